"""Training losses written as people write them in plain NumPy (course assignments, autograd's
examples, from-scratch blog posts): nothing here knows about gradc. tests/test_real_code.py runs
each unchanged through gc.grad and gc.jit(gc.value_and_grad(...)).

Each CASE is (name, loss, argnums, make_args): loss(*args) -> a float; argnums are the parameters.
"""
import numpy as np


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


# ---- 1. two-layer net, softmax loss (CS231n style) -----------------------------------------------
def two_layer_net_loss(params, X, y, reg=1e-3):
    W1, b1, W2, b2 = params["W1"], params["b1"], params["W2"], params["b2"]
    N = X.shape[0]
    hidden = np.maximum(0, np.dot(X, W1) + b1)
    scores = hidden.dot(W2) + b2
    scores = scores - np.max(scores, axis=1, keepdims=True)
    exp_scores = np.exp(scores)
    probs = exp_scores / np.sum(exp_scores, axis=1, keepdims=True)
    correct_logprobs = -np.log(probs[range(N), y])
    data_loss = np.sum(correct_logprobs) / N
    reg_loss = 0.5 * reg * np.sum(W1 * W1) + 0.5 * reg * np.sum(W2 * W2)
    return data_loss + reg_loss


def two_layer_args(r):
    params = {"W1": 0.3 * r.standard_normal((6, 8)), "b1": 0.1 * r.standard_normal(8),
              "W2": 0.3 * r.standard_normal((8, 3)), "b2": np.zeros(3)}
    return params, r.standard_normal((10, 6)), r.integers(0, 3, 10)


# ---- 2. multiclass SVM loss, vectorised, with item assignment ------------------------------------
def svm_loss_vectorized(W, X, y, reg):
    num_train = X.shape[0]
    scores = X @ W
    correct_class_scores = scores[np.arange(num_train), y]
    margins = np.maximum(0, scores - correct_class_scores[:, np.newaxis] + 1.0)
    margins[np.arange(num_train), y] = 0
    loss = np.sum(margins) / num_train
    loss += reg * np.sum(W * W)
    return loss


def svm_args(r):
    return 0.01 * r.standard_normal((7, 4)), r.standard_normal((12, 7)), r.integers(0, 4, 12), 0.1


# ---- 3. softmax classifier with a numerically stable log-sum-exp --------------------------------
def softmax_loss(W, b, X, y):
    logits = np.dot(X, W) + b
    logits -= logits.max(axis=1, keepdims=True)
    log_probs = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    return -np.mean(log_probs[np.arange(len(y)), y])


def softmax_args(r):
    return 0.5 * r.standard_normal((5, 4)), np.zeros(4), r.standard_normal((9, 5)), \
        r.integers(0, 4, 9)


# ---- 4. vanilla character RNN (min-char-rnn style): dicts over time steps ------------------------
def char_rnn_loss(Wxh, Whh, Why, bh, by, inputs, targets, hprev):
    vocab_size = Why.shape[0]
    xs, hs, ys, ps = {}, {}, {}, {}
    hs[-1] = np.copy(hprev)
    loss = 0
    for t in range(len(inputs)):
        xs[t] = np.zeros((vocab_size, 1))
        xs[t][inputs[t]] = 1
        hs[t] = np.tanh(np.dot(Wxh, xs[t]) + np.dot(Whh, hs[t - 1]) + bh)
        ys[t] = np.dot(Why, hs[t]) + by
        ps[t] = np.exp(ys[t]) / np.sum(np.exp(ys[t]))
        loss += -np.log(ps[t][targets[t], 0])
    return loss


def char_rnn_args(r):
    vocab, hidden = 5, 6
    return (0.3 * r.standard_normal((hidden, vocab)), 0.3 * r.standard_normal((hidden, hidden)),
            0.3 * r.standard_normal((vocab, hidden)), np.zeros((hidden, 1)), np.zeros((vocab, 1)))


CHAR_RNN_DATA = ([3, 0, 4, 1, 1, 2], [0, 4, 1, 1, 2, 3], np.zeros((6, 1)))


def char_rnn_params_loss(Wxh, Whh, Why, bh, by):
    # NOTE: the character sequences are bound here, not passed: Python ints passed to gc.grad are
    # traced until non-differentiated arguments stay concrete (API.md section 8, pending).
    return char_rnn_loss(Wxh, Whh, Why, bh, by, *CHAR_RNN_DATA)


# ---- 5. LSTM over a sequence, gates by np.split, mean squared error on the last state ------------
def lstm_loss(W, U, b, Wout, xs, target):
    H = U.shape[0]
    h = np.zeros((xs.shape[1], H))
    c = np.zeros((xs.shape[1], H))
    for x in xs:
        z = x @ W + h @ U + b
        i, f, o, g = np.split(z, 4, axis=1)
        c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
        h = sigmoid(o) * np.tanh(c)
    pred = h.dot(Wout)
    return np.mean((pred - target) ** 2)


def lstm_args(r):
    D, H, B, T = 3, 4, 5, 4
    return (0.4 * r.standard_normal((D, 4 * H)), 0.4 * r.standard_normal((H, 4 * H)),
            np.zeros(4 * H), 0.5 * r.standard_normal((H, 2)), r.standard_normal((T, B, D)),
            r.standard_normal((B, 2)))


# ---- 6. batch-normalised net ---------------------------------------------------------------------
def batchnorm_net_loss(W1, gamma, beta, W2, X, y, eps=1e-5):
    h = X @ W1
    mu = h.mean(axis=0)
    var = h.var(axis=0)
    h_hat = (h - mu) / np.sqrt(var + eps)
    h = np.maximum(gamma * h_hat + beta, 0.0)
    scores = h @ W2
    m = scores.max(axis=1, keepdims=True)
    lse = m[:, 0] + np.log(np.sum(np.exp(scores - m), axis=1))
    return np.mean(lse - scores[np.arange(X.shape[0]), y])


def batchnorm_args(r):
    return (0.5 * r.standard_normal((4, 6)), 1 + 0.1 * r.standard_normal(6),
            0.1 * r.standard_normal(6), 0.5 * r.standard_normal((6, 3)), r.standard_normal((8, 4)),
            r.integers(0, 3, 8))


# ---- 7. variational autoencoder (reparameterisation with fixed noise) ----------------------------
def vae_loss(enc_W, enc_b, dec_W, dec_b, x, noise):
    h = np.tanh(x @ enc_W + enc_b)
    mu, logvar = np.split(h, 2, axis=1)
    z = mu + np.exp(0.5 * logvar) * noise
    logits = z @ dec_W + dec_b
    recon = np.sum(np.logaddexp(0, logits) - x * logits)        # Bernoulli likelihood
    kl = -0.5 * np.sum(1 + logvar - mu ** 2 - np.exp(logvar))
    return (recon + kl) / x.shape[0]


def vae_args(r):
    D, Z, B = 6, 2, 5
    return (0.4 * r.standard_normal((D, 2 * Z)), np.zeros(2 * Z), 0.4 * r.standard_normal((Z, D)),
            np.zeros(D), (r.random((B, D)) > 0.5).astype(float), r.standard_normal((B, Z)))


# ---- 8. GAN: generator and discriminator losses, leaky ReLU --------------------------------------
def leaky_relu(x, slope=0.2):
    return np.where(x > 0, x, slope * x)


def gan_losses(gen_params, disc_params, noise, real):
    G1, G2 = gen_params
    D1, D2 = disc_params
    fake = np.tanh(leaky_relu(noise @ G1) @ G2)

    def discriminate(x):
        return (leaky_relu(x @ D1) @ D2)[:, 0]
    d_real, d_fake = discriminate(real), discriminate(fake)
    d_loss = np.mean(np.logaddexp(0, -d_real)) + np.mean(np.logaddexp(0, d_fake))
    g_loss = np.mean(np.logaddexp(0, -d_fake))
    return d_loss + g_loss


def gan_args(r):
    return ((0.5 * r.standard_normal((3, 5)), 0.5 * r.standard_normal((5, 4))),
            (0.5 * r.standard_normal((4, 5)), 0.5 * r.standard_normal((5, 1))),
            r.standard_normal((6, 3)), r.standard_normal((6, 4)))


# ---- 9. GPT-2-ish block forward (picoGPT style) --------------------------------------------------
def gelu(x):
    return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))


def softmax(x):
    exp_x = np.exp(x - np.max(x, axis=-1, keepdims=True))
    return exp_x / np.sum(exp_x, axis=-1, keepdims=True)


def layer_norm(x, g, b, eps=1e-5):
    mean = np.mean(x, axis=-1, keepdims=True)
    variance = np.var(x, axis=-1, keepdims=True)
    return g * (x - mean) / np.sqrt(variance + eps) + b


def attention(q, k, v, mask):
    return softmax(q @ k.T / np.sqrt(q.shape[-1]) + mask) @ v


def mha(x, c_attn_w, c_proj_w, n_head):
    x = x @ c_attn_w
    qkv = np.split(x, 3, axis=-1)
    qkv_heads = list(map(lambda x: np.split(x, n_head, axis=-1), qkv))
    causal_mask = (1 - np.tri(x.shape[0], dtype=x.dtype)) * -1e10
    out_heads = [attention(q, k, v, causal_mask) for q, k, v in zip(*qkv_heads)]
    return np.hstack(out_heads) @ c_proj_w


def gpt2_loss(wte, wpe, ln_g, ln_b, c_attn_w, c_proj_w, fc_w, proj_w, inputs, targets):
    x = wte[inputs] + wpe[range(len(inputs))]
    x = x + mha(layer_norm(x, ln_g, ln_b), c_attn_w, c_proj_w, n_head=2)
    x = x + gelu(layer_norm(x, ln_g, ln_b) @ fc_w) @ proj_w
    logits = layer_norm(x, ln_g, ln_b) @ wte.T
    logits = logits - logits.max(axis=-1, keepdims=True)
    logp = logits - np.log(np.exp(logits).sum(axis=-1, keepdims=True))
    return -np.mean(logp[np.arange(len(targets)), targets])


def gpt2_args(r):
    V, C, T = 7, 8, 5
    return (0.3 * r.standard_normal((V, C)), 0.1 * r.standard_normal((T, C)), 1 + 0.1 *
            r.standard_normal(C), 0.1 * r.standard_normal(C), 0.3 * r.standard_normal((C, 3 * C)),
            0.3 * r.standard_normal((C, C)), 0.3 * r.standard_normal((C, 2 * C)),
            0.3 * r.standard_normal((2 * C, C)), [int(i) for i in r.integers(0, V, T)],
            r.integers(0, V, T))


# ---- 10. im2col convolution, max pooling, fully connected layer ----------------------------------
def im2col(x, kh, kw, pad):
    N, C, H, W = x.shape
    x_padded = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), mode="constant")
    out_h, out_w = H + 2 * pad - kh + 1, W + 2 * pad - kw + 1
    cols = []
    for i in range(kh):
        for j in range(kw):
            cols.append(x_padded[:, :, i:i + out_h, j:j + out_w])
    cols = np.stack(cols, axis=2)                       # N, C, kh*kw, out_h, out_w
    return cols.transpose(0, 3, 4, 1, 2).reshape(N * out_h * out_w, -1), out_h, out_w


def convnet_loss(conv_w, conv_b, fc_w, x, y):
    N = x.shape[0]
    F, C, kh, kw = conv_w.shape
    cols, out_h, out_w = im2col(x, kh, kw, pad=1)
    out = cols @ conv_w.reshape(F, -1).T + conv_b
    out = out.reshape(N, out_h, out_w, F).transpose(0, 3, 1, 2)
    out = np.maximum(out, 0)
    pooled = out.reshape(N, F, out_h // 2, 2, out_w // 2, 2).max(axis=(3, 5))
    scores = pooled.reshape(N, -1) @ fc_w
    shifted = scores - np.max(scores, axis=1, keepdims=True)
    loss = -np.sum(shifted[np.arange(N), y] - np.log(np.sum(np.exp(shifted), axis=1)))
    return loss / N


def convnet_args(r):
    return (0.3 * r.standard_normal((2, 1, 3, 3)), 0.1 * r.standard_normal(2),
            0.3 * r.standard_normal((2 * 2 * 2, 3)), r.standard_normal((3, 1, 4, 4)),
            r.integers(0, 3, 3))


# ---- 11. Gaussian process marginal likelihood (Cholesky) -----------------------------------------
def gp_negative_log_likelihood(log_params, X, y):
    lengthscale, variance, noise = np.exp(log_params)
    sqdist = np.sum(X ** 2, 1).reshape(-1, 1) + np.sum(X ** 2, 1) - 2 * np.dot(X, X.T)
    K = variance * np.exp(-0.5 / lengthscale ** 2 * sqdist) + noise * np.eye(len(X))
    L = np.linalg.cholesky(K)
    alpha = np.linalg.solve(L.T, np.linalg.solve(L, y))
    return 0.5 * np.dot(y, alpha) + np.sum(np.log(np.diag(L))) + 0.5 * len(X) * np.log(2 * np.pi)


def gp_args(r):
    X = r.uniform(-2, 2, (6, 1))
    return np.array([0.1, 0.2, -1.0]), X, np.sin(2 * X[:, 0]) + 0.1 * r.standard_normal(6)


# ---- 12. logistic regression with elastic-net penalty --------------------------------------------
def logistic_regression_loss(w, b, X, y, l1=0.01, l2=0.01):
    z = np.dot(X, w) + b
    nll = np.mean(np.logaddexp(0, -y * z))
    return nll + l1 * np.linalg.norm(w, 1) + l2 * np.linalg.norm(w) ** 2


def logistic_args(r):
    w = r.uniform(0.2, 1.0, 5) * r.choice([-1, 1], 5)        # away from the kink of |w|
    return w, 0.1, r.standard_normal((20, 5)), r.choice([-1.0, 1.0], 20)


# ---- 13. skip-gram with negative sampling (word2vec) ---------------------------------------------
def skipgram_loss(W_in, W_out, centers, contexts, negatives):
    v = W_in[centers]                                   # (B, D)
    u = W_out[contexts]
    u_neg = W_out[negatives]                            # (B, K, D)
    pos = np.sum(v * u, axis=1)
    neg = np.einsum("bkd,bd->bk", u_neg, v)
    return -np.mean(-np.logaddexp(0, -pos) + np.sum(-np.logaddexp(0, neg), axis=1))


def skipgram_args(r):
    V, D, B, K = 10, 4, 6, 3
    return (0.3 * r.standard_normal((V, D)), 0.3 * r.standard_normal((V, D)),
            r.integers(0, V, B), r.integers(0, V, B), r.integers(0, V, (B, K)))


# ---- 14. denoising autoencoder with tied weights and clipping ------------------------------------
def autoencoder_loss(W, b_h, b_v, x, mask):
    corrupted = x * mask
    h = np.tanh(corrupted @ W + b_h)
    recon = h @ W.T + b_v
    recon = np.clip(recon, -3, 3)
    return np.sum((recon - x) ** 2) / len(x)


def autoencoder_args(r):
    return (0.3 * r.standard_normal((6, 3)), np.zeros(3), np.zeros(6), r.standard_normal((7, 6)),
            (r.random((7, 6)) > 0.2).astype(float))


# ---- 15. fluid-style simulation (autograd's example): diffusion and advection by np.roll ---------
def simulate(initial, velocity, steps=4, nu=0.1):
    f = initial
    for _ in range(steps):
        laplacian = (np.roll(f, 1, axis=0) + np.roll(f, -1, axis=0) + np.roll(f, 1, axis=1)
                     + np.roll(f, -1, axis=1) - 4 * f)
        advected = f - velocity * (f - np.roll(f, 1, axis=1))
        f = advected + nu * laplacian
    return f


def fluid_loss(initial, velocity, target):
    final = simulate(initial, velocity)
    return np.sum((final - target) ** 2) + 0.1 * np.sum(np.square(total_variation(initial)))


def total_variation(f):
    return np.hstack([(f[1:] - f[:-1]).ravel(), (f[:, 1:] - f[:, :-1]).ravel()])


def fluid_args(r):
    return r.standard_normal((5, 6)), 0.3, r.standard_normal((5, 6))


# ---- 16. polynomial ridge regression solved in closed form ---------------------------------------
def ridge_validation_loss(log_lam, x_train, y_train, x_val, y_val, degree=4):
    feats = np.column_stack([x_train ** k for k in range(degree + 1)])
    A = feats.T @ feats + np.exp(log_lam) * np.eye(degree + 1)
    coef = np.linalg.solve(A, feats.T @ y_train)
    val_feats = np.vstack([x_val ** k for k in range(degree + 1)]).T
    return np.mean((val_feats @ coef - y_val) ** 2)


def ridge_args(r):
    x = r.uniform(-1, 1, 12)
    xv = r.uniform(-1, 1, 6)
    return np.array(-1.0), x, np.sin(3 * x), xv, np.sin(3 * xv)


# ---- 17. Gaussian mixture negative log-likelihood ------------------------------------------------
def gmm_nll(logits, means, log_stds, x):
    log_weights = logits - np.log(np.sum(np.exp(logits)))
    stds = np.exp(log_stds)
    log_probs = (-0.5 * ((x[:, None] - means[None, :]) / stds) ** 2 - log_stds
                 - 0.5 * np.log(2 * np.pi) + log_weights)
    m = np.max(log_probs, axis=1, keepdims=True)
    return -np.sum(np.log(np.sum(np.exp(log_probs - m), axis=1)) + m.squeeze())


def gmm_args(r):
    return (0.1 * r.standard_normal(3), np.array([-1.0, 0.2, 1.5]), 0.1 * r.standard_normal(3),
            r.standard_normal(15))


# ---- 18. attention pooling that fills a preallocated output buffer -------------------------------
def pooled_features_loss(Wq, Wk, feats, target):
    n, d = feats.shape
    out = np.zeros_like(Wq[:, :2])                      # a buffer of the parameters' kind
    scores = feats @ Wk @ Wq.T
    weights = softmax(scores.T)
    out[:, 0] = weights @ feats[:, 0]
    out[:, 1] = np.sum(weights * feats[:, 1], axis=1)
    out[1:, :] += 0.5 * out[:-1, :]
    return np.sum((out - target) ** 2) + np.var(out, ddof=1) + np.prod(np.cumsum(out[0]) + 2)


def pooled_args(r):
    return (0.5 * r.standard_normal((3, 4)), 0.5 * r.standard_normal((2, 4)),
            r.standard_normal((5, 2)), r.standard_normal((3, 2)))


CASES = [
    ("two_layer_net_softmax", two_layer_net_loss, 0, two_layer_args),
    ("svm_loss_vectorized", svm_loss_vectorized, 0, svm_args),
    ("softmax_classifier", softmax_loss, (0, 1), softmax_args),
    ("char_rnn", char_rnn_params_loss, (0, 1, 2, 3, 4), char_rnn_args),
    ("lstm", lstm_loss, (0, 1, 2, 3), lstm_args),
    ("batchnorm_net", batchnorm_net_loss, (0, 1, 2, 3), batchnorm_args),
    ("vae", vae_loss, (0, 1, 2, 3), vae_args),
    ("gan", gan_losses, (0, 1), gan_args),
    ("gpt2_block", gpt2_loss, (0, 1, 2, 3, 4, 5, 6, 7), gpt2_args),
    ("im2col_convnet", convnet_loss, (0, 1, 2), convnet_args),
    ("gaussian_process", gp_negative_log_likelihood, 0, gp_args),
    ("logistic_elastic_net", logistic_regression_loss, (0, 1), logistic_args),
    ("skipgram_negative_sampling", skipgram_loss, (0, 1), skipgram_args),
    ("denoising_autoencoder", autoencoder_loss, (0, 1, 2), autoencoder_args),
    ("fluid_simulation", fluid_loss, (0, 1), fluid_args),
    ("ridge_closed_form", ridge_validation_loss, 0, ridge_args),
    ("gaussian_mixture", gmm_nll, (0, 1, 2), gmm_args),
    ("buffer_filled_attention", pooled_features_loss, (0, 1), pooled_args),
]
