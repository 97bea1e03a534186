"""One exported function of a gc.Module: its specs, its traced graph, its C kernel and prototypes."""
import inspect
import os

from ..jit import jit, leaf_names
from .names import _SUFFIXES, BuildError, _c_names, _wrap, one_line


class Export:
    """One exported function of a Module: its specs and, traced on first use, its graph and C."""

    def __init__(self, module, fn, specs, name):
        self.module = module
        self.fn = fn
        self.name = name
        self.specs = specs                    # one pytree of gc.Spec per positional argument
        self.symbol = f"{module.name}_{name}"
        code = getattr(fn, "__code__", None)
        self.where = (f"{os.path.basename(code.co_filename)}:{code.co_firstlineno}" if code
                      else module.source_file)
        self._lowered = None
        self._code = None

    @property
    def lowered(self):
        """The traced, simplified graph (gc.Lowered); BuildError if the function does not trace."""
        if self._lowered is None:
            try:
                # gc.debug_print needs the Python side: a built module drops it
                self._lowered = jit(self.fn).lower(*self.specs).without_prints()
            except Exception as e:     # the user's function: report it, do not crash the build
                raise BuildError(f"{self.where}: export {self.name!r} of module "
                                 f"{self.module.name!r} failed to trace: {one_line(e)}") from e
        return self._lowered

    @property
    def code(self):
        """The C backend's kernel for this export (a static function named <symbol>_kernel)."""
        if self._code is None:
            from ..cbackend.backend import CSource
            self._code = CSource(self.lowered, name=f"{self.symbol}_kernel", static=True, threads=1)
        return self._code

    def symbols(self):
        """The C names this export defines; its constants' too once it has been generated."""
        s = self.symbol
        names = [s] + [f"{s}_{suffix}" for suffix in _SUFFIXES]
        return names + (self.const_names() if self._code is not None else [])

    def const_names(self):
        return [f"{self.symbol}_k{j}" for j in range(len(self.code.consts))]

    def param_names(self):
        """The export's Python parameter names, one per spec (arg<i> past the signature's)."""
        try:
            params = [p.name for p in inspect.signature(self.fn).parameters.values()
                      if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        except (TypeError, ValueError):
            params = []
        return [params[i] if i < len(params) else f"arg{i}" for i in range(len(self.specs))]

    def sizes(self):
        """The named dims of the export's specs, in order of first appearance: one `int64_t`
        parameter each, before the arrays (API.md section 10)."""
        from ..symbolic import dim_names
        return _c_names(dim_names(self.lowered.graph))

    def io(self):
        """(inputs, outputs): lists of (C type, C name, gradc type string, readable name)."""
        from ..cbackend.csyntax import ctype
        graph, low = self.lowered.graph, self.lowered
        out_names = leaf_names("out", low.out_tree)
        out_c = [f"out{i}" for i in range(len(graph.outputs))]
        in_c = _c_names(low.in_names, taken=out_c + self.sizes())
        inputs = [(ctype(n.dtype), c, n.type_str, name)
                  for n, c, name in zip(graph.inputs, in_c, low.in_names)]
        outputs = [(ctype(n.dtype), c, n.type_str, name)
                   for n, c, name in zip(graph.outputs, out_c, out_names)]
        return inputs, outputs

    def c_params(self):
        inputs, outputs = self.io()
        return ([f"int64_t {d}" for d in self.sizes()]
                + [f"const {t} *{c}" for t, c, _, _ in inputs]
                + [f"{t} *{c}" for t, c, _, _ in outputs])

    def work_bytes_params(self):
        return ", ".join(f"int64_t {d}" for d in self.sizes()) or "void"

    def prototypes(self):
        """The C declarations of this export's public functions, in header order."""
        s, params = self.symbol, self.c_params()
        return [_wrap(f"int {s}", params, ";"),
                _wrap(f"int {s}_work", params + ["void *work"], ";"),
                f"size_t {s}_work_bytes({self.work_bytes_params()});",
                f"int {s}_n_in(void);",
                f"int {s}_n_out(void);",
                f"const char *{s}_name_in(int i);",
                f"const char *{s}_name_out(int i);"]
