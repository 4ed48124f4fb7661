// Peer for tests/bench_process.sh: onnxruntime scores a .npy batch the way `lens predict` does,
// BATCH images per session.run, one intra-op thread.
//   NODE_PATH=/tmp/ort/node_modules node tests/peer_ort_predict.js MODEL.onnx IMAGES.npy BATCH LABEL [REPEAT]
// (REPEAT: score the file that many times over, as `lens predict` given the file REPEAT times.)
// Prints "onnxruntime LABEL: X img/s" where X = images / CPU time of the process spent inside
// session.run (process.cpuUsage: user + system), the peer's most favourable figure: reading the
// file, starting node, creating the session and three warm-up runs are not counted. The line
// after it says what the first two cost.
'use strict';
const fs = require('fs');
const ort = require('onnxruntime-node');

// The .npy header (format 1.0/2.0): magic, version, header length, a Python dict literal.
function readNpy(path) {
  const buf = fs.readFileSync(path);
  if (buf.toString('latin1', 0, 6) !== '\x93NUMPY') throw new Error(`${path}: not a .npy file`);
  const major = buf[6];
  const hlen = major === 1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8);
  const start = major === 1 ? 10 : 12;
  const header = buf.toString('latin1', start, start + hlen);
  if (!/'descr':\s*'<f4'/.test(header)) throw new Error(`${path}: needs little-endian float32 ('<f4')`);
  if (/'fortran_order':\s*True/.test(header)) throw new Error(`${path}: Fortran order is not read here`);
  const shape = header.match(/'shape':\s*\(([^)]*)\)/)[1].split(',').filter(s => s.trim() !== '').map(Number);
  const off = start + hlen;
  const data = new Float32Array(buf.buffer.slice(buf.byteOffset + off, buf.byteOffset + buf.length));
  return { shape, data };
}

function cpuSeconds(u) { return (u.user + u.system) / 1e6; }

(async () => {
  const [model, npy, batchText, label, repeatText] = process.argv.slice(2);
  const batch = Number(batchText || 32), repeat = Number(repeatText || 1);
  const t0 = process.cpuUsage();
  const { shape, data } = readNpy(npy);
  const [n, c, h, w] = shape;
  const session = await ort.InferenceSession.create(model, { intraOpNumThreads: 1, interOpNumThreads: 1 });
  const setup = cpuSeconds(process.cpuUsage(t0));
  let checksum = 0, run = 0;
  // three uncounted runs on the first batch: onnxruntime grows its memory arena over the first
  // runs of a shape (measured: 1.5 s of system time in page faults on OU-200 at batch 32, then
  // none), a one-off cost that a long job spreads thin, so the peer is timed in its steady state
  const first = new ort.Tensor('float32', data.subarray(0, Math.min(batch, n) * c * h * w), [Math.min(batch, n), c, h, w]);
  for (let k = 0; k < 3; k++) await session.run({ x: first });
  for (let k = 0; k < repeat; k++) for (let i = 0; i < n; i += batch) {
    const b = Math.min(batch, n - i);
    const x = new ort.Tensor('float32', data.subarray(i * c * h * w, (i + b) * c * h * w), [b, c, h, w]);
    const r0 = process.cpuUsage();
    const out = await session.run({ x });
    run += cpuSeconds(process.cpuUsage(r0));
    checksum += out.logits.data[0];
  }
  console.log(`onnxruntime ${label}: ${(n * repeat / run).toFixed(1)} img/s (session.run CPU ${run.toFixed(3)} s for ${n * repeat} images, batch ${batch})`);
  console.log(`  reading the .npy and creating the session: ${setup.toFixed(3)} s CPU (not counted above); checksum ${checksum.toFixed(3)}`);
})().catch(e => { console.error(`peer_ort_predict: ${e.message}`); process.exit(1); });
