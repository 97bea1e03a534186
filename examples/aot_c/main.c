/* Calls two gradc-generated modules from plain C99: the lecture's circuit f = (x + y) z at
 * (-2, 5, -4), and the gradient of a linear regression's mean squared error: one kernel for any
 * number of rows n (a named dim), called for 8 rows and for 5, with the self-allocating entry
 * point and with a caller workspace. Build: make (see Makefile). */
#include <stdio.h>
#include <stdlib.h>

#include "circuit.h"
#include "linreg.h"

#define N 8
#define D 3

static int circuit_demo(void)
{
    double x = -2, y = 5, z = -4, f, dx, dy, dz;
    int code = circuit_grad(&x, &y, &z, &f, &dx, &dy, &dz);
    if (code != CIRCUIT_OK) {
        fprintf(stderr, "circuit_grad failed with code %d\n", code);
        return 1;
    }
    printf("circuit: f = %g, df/dx = %g, df/dy = %g, df/dz = %g\n", f, dx, dy, dz);
    return 0;
}

static int linreg_demo(int64_t n)
{
    /* y = 2 x0 - 3 x1 + 0.5 x2 + 1 on a small integer grid, starting from w = 0, b = 0. */
    float X[N][D], y[N], w[D] = {0, 0, 0}, b = 0, loss, grad_w[D], grad_b;
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < D; j++) X[i][j] = (float)((i * D + j) % 5 - 2);
        y[i] = 2 * X[i][0] - 3 * X[i][1] + 0.5f * X[i][2] + 1;
    }
    /* The _work variant runs in a workspace the caller owns (reuse it across calls); its size
     * depends on n. */
    size_t bytes = linreg_grad_work_bytes(n);
    void *work = malloc(bytes ? bytes : 1);     /* malloc(0) may return NULL */
    if (work == NULL) return 1;
    int code = linreg_grad_work(n, w, &b, &X[0][0], y, &loss, grad_w, &grad_b, work);
    free(work);
    if (code != LINREG_OK) {
        fprintf(stderr, "linreg_grad failed with code %d\n", code);
        return 1;
    }
    printf("linreg (%d rows): loss = %.6f, dl/dw = %.6f %.6f %.6f, dl/db = %.6f\n", (int)n, loss,
           grad_w[0], grad_w[1], grad_w[2], grad_b);
    printf("linreg_grad(");
    for (int i = 0; i < linreg_grad_n_in(); i++)
        printf("%s%s", i ? ", " : "", linreg_grad_name_in(i));
    printf(") -> %d outputs\n", linreg_grad_n_out());
    return 0;
}

int main(void)
{
    float X[1][D] = {{0, 0, 0}}, y[1] = {0}, w[D] = {0}, b = 0, loss, gw[D], gb;
    if (linreg_grad(0, w, &b, &X[0][0], y, &loss, gw, &gb) != LINREG_ERR_SIZE) return 1;
    return circuit_demo() || linreg_demo(N) || linreg_demo(5);
}
