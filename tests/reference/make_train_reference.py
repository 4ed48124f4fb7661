"""Reference arrays for tests/test_train.c, made with PyTorch (torch.optim, torch.nn.functional).

Run from this folder with PyTorch installed (Debian: apt-get install python3-torch):
    /usr/bin/python3 make_train_reference.py
It writes train_*.npy beside itself. CI does not run it; the arrays are committed.
"""
import numpy as np
import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float32)
rng = np.random.default_rng(20221)

def save(name, array):
    np.save(f"train_{name}.npy", np.ascontiguousarray(np.asarray(array, dtype=np.float32)))

# --- optimisers: 10 parameters, 6 steps of fixed gradients -----------------------------------
p0 = rng.normal(size=10).astype(np.float32)
grads = rng.normal(size=(6, 10)).astype(np.float32)
save("opt_p0", p0)
save("opt_grads", grads)
configs = {
    "sgd": lambda p: torch.optim.SGD([p], lr=0.1),
    "sgd_momentum_wd": lambda p: torch.optim.SGD([p], lr=0.1, momentum=0.9, weight_decay=0.01),
    "sgd_nesterov": lambda p: torch.optim.SGD([p], lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.001),
    "adam": lambda p: torch.optim.Adam([p], lr=0.01),
    "adam_wd": lambda p: torch.optim.Adam([p], lr=0.02, betas=(0.8, 0.99), weight_decay=0.05),
    "adamw": lambda p: torch.optim.AdamW([p], lr=0.01, weight_decay=0.1),
}
for name, make in configs.items():
    for clip in [0.0, 0.5]:
        p = torch.nn.Parameter(torch.tensor(p0))
        opt = make(p)
        out = []
        for g in grads:
            opt.zero_grad()
            p.grad = torch.tensor(g).clone()
            if clip > 0:
                torch.nn.utils.clip_grad_norm_([p], clip)
            opt.step()
            out.append(p.detach().numpy().copy())
        save(f"opt_{name}{'_clip' if clip else ''}", np.stack(out))

# --- schedules: learning rate for 12 epochs ---------------------------------------------------
def lrs(make_sched, epochs=12):
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=0.1)
    sched = make_sched(opt)
    out = []
    for _ in range(epochs):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return np.array(out)
save("sched_step", lrs(lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=3, gamma=0.5)))
save("sched_cosine", lrs(lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=10, eta_min=0.001)))

# --- losses and their gradients ---------------------------------------------------------------
logits = rng.normal(size=(8, 3)).astype(np.float32) * 2
labels = np.array([0, 2, 1, 1, 0, 2, 2, 1], dtype=np.float32)
weights = np.array([0.5, 2.0, 1.5], dtype=np.float32)
save("loss_logits", logits)
save("loss_labels", labels)
save("loss_weights", weights)

def loss_and_grad(fn, x):
    t = torch.tensor(x, requires_grad=True)
    loss = fn(t)
    loss.backward()
    return np.concatenate([[loss.item()], t.grad.numpy().ravel()])

save("loss_ce", loss_and_grad(lambda z: F.cross_entropy(z, torch.tensor(labels).long()), logits))
save("loss_ce_weighted", loss_and_grad(lambda z: F.cross_entropy(z, torch.tensor(labels).long(), weight=torch.tensor(weights)), logits))

def focal(z, gamma=2.0, alpha=None):
    logp = F.log_softmax(z, dim=1).gather(1, torch.tensor(labels).long()[:, None])[:, 0]
    a = torch.tensor(weights)[torch.tensor(labels).long()] if alpha is not None else 1.0
    return (-a * (1 - logp.exp()) ** gamma * logp).mean()
save("loss_focal", loss_and_grad(lambda z: focal(z, 2.0, True), logits))

bce_logits = rng.normal(size=12).astype(np.float32) * 3
bce_targets = rng.integers(0, 2, size=12).astype(np.float32)
save("loss_bce_logits", bce_logits)
save("loss_bce_targets", bce_targets)
save("loss_bce", loss_and_grad(lambda z: F.binary_cross_entropy_with_logits(z, torch.tensor(bce_targets), pos_weight=torch.tensor(4.0)), bce_logits))

pred = rng.normal(size=10).astype(np.float32)
target = rng.normal(size=10).astype(np.float32)
save("loss_mse_pred", pred)
save("loss_mse_target", target)
save("loss_mse", loss_and_grad(lambda z: F.mse_loss(z, torch.tensor(target)), pred))

# Gaussian NLL with a log-variance head: outputs [4, 2k] = (mu, log var), k = 3
outputs = rng.normal(size=(4, 6)).astype(np.float32)
y = rng.normal(size=(4, 3)).astype(np.float32)
save("loss_gnll_outputs", outputs)
save("loss_gnll_targets", y)
save("loss_gnll", loss_and_grad(lambda o: F.gaussian_nll_loss(o[:, :3], torch.tensor(y), o[:, 3:].exp()), outputs))
print("wrote", len(__import__("glob").glob("train_*.npy")), "arrays")
