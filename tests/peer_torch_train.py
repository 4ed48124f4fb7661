"""Peer for tests/bench_process.sh: one epoch of PyTorch training on a .npy batch, as `lens train`
--epochs 1 --val-fraction 0 does it (OU-66, Adam lr 1e-3, batch 32, cross-entropy, shuffled),
one thread.

    /usr/bin/python3 tests/peer_torch_train.py PEERS_DIR IMAGES.npy LABELS.csv LABEL

PEERS_DIR holds wilde_nets.py (the OU-66 network in PyTorch, ../shared/peers). Prints
"pytorch LABEL: X img/s" where X = images / CPU time of the training loop (time.process_time);
importing torch and reading the files are reported on the next line, not counted.
"""
import csv
import sys
import time

t0 = time.process_time()
import numpy as np  # noqa: E402
import torch  # noqa: E402

peers, images_path, labels_path, label = sys.argv[1:5]
sys.path.insert(0, peers)
from wilde_nets import ou66  # noqa: E402

torch.set_num_threads(1)
torch.manual_seed(1)
x = torch.from_numpy(np.load(images_path).astype(np.float32))
with open(labels_path, newline="") as f:
    rows = list(csv.DictReader(f))
column = next(c for c in ("label", "class", "is_lens") if c in rows[0])
y = torch.tensor([int(float(r[column])) for r in rows])
net = ou66(x.shape[1]).train()
opt = torch.optim.Adam(net.parameters(), 1e-3)
t1 = time.process_time()
order = torch.randperm(len(y))
for i in range(0, len(y), 32):
    idx = order[i:i + 32]
    opt.zero_grad()
    loss = torch.nn.functional.cross_entropy(net(x[idx]), y[idx])
    loss.backward()
    opt.step()
t2 = time.process_time()
print(f"pytorch {label}: {len(y) / (t2 - t1):.1f} img/s (loop CPU {t2 - t1:.3f} s for {len(y)} images, batch 32, Adam)")
print(f"  importing torch and reading the data: {t1 - t0:.3f} s CPU (not counted above); last loss {loss.item():.4f}")
