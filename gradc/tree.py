"""Pytrees: nested tuples, lists and dicts of leaves, flattened as jax.tree_util does (dict keys sorted)."""
from dataclasses import dataclass
from typing import Any, Callable, Iterable, List, Tuple


@dataclass(frozen=True)
class TreeDef:
    """The structure of a pytree: a container kind, its keys and its children's structures."""
    kind: str            # "leaf", "none", "tuple", "list" or "dict"
    keys: tuple = ()     # dict keys, sorted
    children: tuple = ()

    @property
    def num_leaves(self):
        if self.kind == "leaf":
            return 1
        return sum(child.num_leaves for child in self.children)

    def __repr__(self):
        if self.kind == "leaf":
            return "*"
        if self.kind == "none":
            return "None"
        inner = ", ".join(repr(c) for c in self.children)
        if self.kind == "dict":
            inner = ", ".join(f"{k!r}: {c!r}" for k, c in zip(self.keys, self.children))
            return "{" + inner + "}"
        return f"({inner})" if self.kind == "tuple" else f"[{inner}]"


_LEAF = TreeDef("leaf")


def tree_flatten(tree: Any) -> Tuple[List[Any], TreeDef]:
    """Returns (leaves, treedef). Iterative, so deep structures do not hit the recursion limit.

    Dicts flatten in sorted-key order, as jax.tree_util.

    >>> import gradc as gc
    >>> leaves, treedef = gc.tree_flatten({"b": 1, "a": (2, 3)})
    >>> leaves, treedef
    ([2, 3, 1], {'a': (*, *), 'b': *})
    """
    leaves = []

    def build(node):
        if isinstance(node, (tuple, list)) and not hasattr(node, "_fields"):
            kind = "tuple" if isinstance(node, tuple) else "list"
            return TreeDef(kind, (), tuple(build(child) for child in node))
        if isinstance(node, tuple):   # namedtuple: flattened as a tuple
            return TreeDef("tuple", (), tuple(build(child) for child in node))
        if isinstance(node, dict):
            keys = tuple(sorted(node))
            return TreeDef("dict", keys, tuple(build(node[k]) for k in keys))
        if node is None:
            return TreeDef("none")
        leaves.append(node)
        return _LEAF

    return leaves, build(tree)


def tree_unflatten(treedef: TreeDef, leaves: Iterable[Any]) -> Any:
    """Inverse of tree_flatten.

    >>> import gradc as gc
    >>> leaves, treedef = gc.tree_flatten({"a": 1, "b": [2, 3]})
    >>> gc.tree_unflatten(treedef, [10, 20, 30])
    {'a': 10, 'b': [20, 30]}
    """
    leaves = iter(leaves)

    def build(td):
        if td.kind == "leaf":
            return next(leaves)
        if td.kind == "none":
            return None
        children = [build(child) for child in td.children]
        if td.kind == "dict":
            return dict(zip(td.keys, children))
        return tuple(children) if td.kind == "tuple" else children

    return build(treedef)


def tree_leaves(tree: Any) -> List[Any]:
    """The leaves of a pytree, in tree_flatten's order.

    >>> import gradc as gc
    >>> gc.tree_leaves({"w": [1, 2], "b": 3})
    [3, 1, 2]
    """
    return tree_flatten(tree)[0]


def tree_map(fn: Callable[..., Any], tree: Any, *rest: Any) -> Any:
    """Applies fn leaf-wise: gc.tree_map(lambda p, g: p - lr * g, params, grads).

    >>> import gradc as gc
    >>> gc.tree_map(lambda p, g: p - 0.5 * g, {"w": 1.0, "b": [2.0]}, {"w": 2.0, "b": [2.0]})
    {'b': [1.0], 'w': 0.0}
    """
    leaves, treedef = tree_flatten(tree)
    others = [tree_flatten(r) for r in rest]
    for other_leaves, other_def in others:
        if other_def != treedef:
            raise ValueError(f"tree_map: structures differ: {treedef} vs {other_def}")
    mapped = [fn(*args) for args in zip(leaves, *(o[0] for o in others))]
    return tree_unflatten(treedef, mapped)
