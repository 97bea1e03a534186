"""The package's compiled kernels: softmax regression on 8x8 digits (lectures 2.5, 003).

gradc traces and compiles these when the package is built (setup.py's cffi_modules); the installed
package imports `lecture_demo.digits_kernels`, which needs only numpy and cffi.
"""
import gradc as gc

B, D, K = 32, 64, 10          # batch size, pixels, classes
digits = gc.Module("digits_kernels", package="lecture_demo")


def loss(W, b, X, y):
    return gc.nn.cross_entropy(X @ W + b, y)


@digits.export(f"f32[{D},{K}]", f"f32[{K}]", f"f32[{B},{D}]", f"i64[{B}]")
def loss_and_grads(W, b, X, y):
    """Mean cross-entropy of the batch and its gradient w.r.t. W and b."""
    return gc.value_and_grad(loss, argnums=(0, 1))(W, b, X, y)


@digits.export(f"f32[{D},{K}]", f"f32[{K}]", f"f32[{B},{D}]")
def predict(W, b, X):
    """The predicted class of each row of X."""
    return gc.argmax(X @ W + b, axis=1)


ffibuilder = digits.ffibuilder()     # for setup(cffi_modules=["kernels.py:ffibuilder"])
