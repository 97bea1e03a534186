"""Two gradc modules for the C example: the lecture's circuit f = (x + y) z and a linear-regression
gradient for any number of rows n (a named dim: the C function takes n first). Each gets its own
prefix (circuit_, linreg_), so both link into one C program.

Run: gradc build kernels.py -o build --c-only   (the Makefile does it)
"""
import gradc as gc

circuit = gc.Module("circuit")


@circuit.export("f64[]", "f64[]", "f64[]", name="grad")
def circuit_grad(x, y, z):
    """f = (x + y) z and its gradient (df/dx, df/dy, df/dz)."""
    return gc.value_and_grad(lambda x, y, z: (x + y) * z, argnums=(0, 1, 2))(x, y, z)


linreg = gc.Module("linreg")
D = 3


def mse_loss(w, b, X, y):
    """Mean squared error of the linear model X w + b (lectures 2.5, 002)."""
    return gc.nn.mse(X @ w + b, y)


@linreg.export(f"f32[{D}]", "f32[]", f"f32[n,{D}]", "f32[n]", name="grad")
def linreg_grad(w, b, X, y):
    """The loss and its gradient with respect to w and b."""
    return gc.value_and_grad(mse_loss, argnums=(0, 1))(w, b, X, y)
