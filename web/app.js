/* The page of docs/web.md. lens_web.js is the toolkit compiled to WebAssembly (web/lens_web.c);
 * lens_data.js holds the finders' weights and two sample cutouts as base64 (LENS_DATA), so the
 * page needs no network and works when opened from a folder (file://). */
'use strict';

var FINDERS = [ /* slot 0: one band; slot 1: four bands (web/lens_web.c) */
  {slot: 0, name: 'OU_VIS', file: 'OU_VIS.safetensors'},
  {slot: 1, name: 'OU_66', file: 'OU_66.safetensors'}
];
var SAMPLES = {
  'sample-lens': {file: '0000002_VIS.fits', path: 'samples/vis/0000002_VIS.fits'},
  'sample-other': {file: '0000001_VIS.fits', path: 'samples/vis/0000001_VIS.fits'}
};
/* The columns of lens sim's labels.csv shown first (docs/populations.md describes them all). */
var PARAMS = [
  ['kind', 'what the object is', ''],
  ['theta_E', 'Einstein radius θ_E', '″'],
  ['sigma_v', 'deflector velocity dispersion σ_v', 'km/s'],
  ['z_lens', 'deflector redshift', ''],
  ['z_source', 'source redshift', ''],
  ['e1', 'deflector ellipticity e1', ''],
  ['e2', 'deflector ellipticity e2', ''],
  ['gamma1', 'external shear γ1', ''],
  ['gamma2', 'external shear γ2', ''],
  ['source_R', 'source half-light radius', '″'],
  ['source_n', 'source Sersic index', ''],
  ['magnification', 'total magnification of the source', ''],
  ['n_images', 'images of the source centre', ''],
  ['arc_snr', 'S/N of the lensed light (VIS)', ''],
  ['mag_source', 'source magnitude, unlensed (VIS)', 'mag'],
  ['mag_lens', 'deflector magnitude (VIS)', 'mag']
];

var M = null;          /* the module once loaded */
var busy = false;
var method = 0;        /* 0 Grad-CAM, 1 occlusion */
var last = null;       /* the last answer (parsed JSON) */
var refused = null;    /* a file dropped or picked while the page was busy, not opened */

function $(id) { return document.getElementById(id); }

function status(text, isError) {
  var s = $('status');
  s.textContent = text;
  s.className = isError ? 'error' : '';
}

function bytesOf(name) {
  var text = atob(LENS_DATA[name]), out = new Uint8Array(text.length), i;
  for (i = 0; i < text.length; i++) out[i] = text.charCodeAt(i);
  return out;
}

/* Copies bytes into the module's memory and calls f(pointer, length); frees them after. null
 * (f not called) when the module's memory cannot hold them: tooLarge says so. */
function withBytes(bytes, f) {
  var p = M._lensweb_alloc(bytes.length);
  if (!p) return null;
  M.HEAPU8.set(bytes, p);
  try { return f(p, bytes.length); } finally { M._lensweb_free(p); }
}

function tooLarge(name, bytes) {
  return name + ': too large for the page\'s memory (' + Math.ceil(bytes / 1048576) + ' MB): score it with lens predict';
}

function message() { return M.UTF8ToString(M._lensweb_message()); }
function answer() { return JSON.parse(M.UTF8ToString(M._lensweb_text())); }

/* Runs f after the browser has drawn the status line (the work blocks the page meanwhile). */
function later(text, f) {
  busy = true;
  setButtons(false);
  status(text);
  setTimeout(function () {
    try { f(); } catch (e) { status('Something went wrong: ' + e, true); }
    busy = false;
    setButtons(true);
    if (refused) { /* said again after the job's own line, which replaced the first saying */
      status($('status').textContent + ' ' + refused + ' was not opened while the page was busy: open it again.', $('status').className === 'error');
      refused = null;
    }
  }, 30);
}

function setButtons(on) {
  var b = document.querySelectorAll('button'), i;
  for (i = 0; i < b.length; i++) b[i].disabled = !on;
}

function fmt(x, digits) {
  var v = Number(x);
  if (!isFinite(v)) return String(x);
  if (v === Math.round(v) && Math.abs(v) < 1e6) return String(v);
  return v.toPrecision(digits || 4);
}

/* ---- scoring ------------------------------------------------------------------------------- */

/* A file's bytes, from a drop, the file picker or a sample: FITS or PNG by its first bytes. */
function openBytes(name, bytes, done) {
  var png = bytes.length >= 8 && bytes[0] === 0x89 && bytes[1] === 0x50 && bytes[2] === 0x4e && bytes[3] === 0x47;
  if (png) return openPng(name, bytes, done);
  later('Scoring ' + name + '…', function () {
    var rc = withBytes(bytes, function (p, n) { return M._lensweb_predict_fits(p, n); });
    if (rc === null) fail(tooLarge(name, bytes.length));
    else if (rc) {
      var text = new TextDecoder('latin1').decode(bytes.subarray(0, 6));
      fail(name + ': ' + message() + (text !== 'SIMPLE' && text !== 'XTENSI' ? ' (the page reads FITS and PNG files)' : ''));
    } else {
      show(answer(), name, 'fits');
      explain();
    }
    if (done) done();
  });
}

/* A PNG, decoded by the browser; its grey level (the mean of red, green and blue) is one band. */
function openPng(name, bytes, done) {
  var blob = new Blob([bytes], {type: 'image/png'});
  createImageBitmap(blob, {colorSpaceConversion: 'none', premultiplyAlpha: 'none'}).then(function (bitmap) {
    var c = document.createElement('canvas'), g, data, px, i, w = bitmap.width, h = bitmap.height;
    c.width = w; c.height = h;
    g = c.getContext('2d');
    g.drawImage(bitmap, 0, 0);
    data = g.getImageData(0, 0, w, h).data;
    px = new Float32Array(w * h);
    for (i = 0; i < w * h; i++) px[i] = (data[4 * i] + data[4 * i + 1] + data[4 * i + 2]) / 3;
    later('Scoring ' + name + '…', function () {
      var bytes = new Uint8Array(px.buffer);
      var rc = withBytes(bytes, function (p) { return M._lensweb_predict_pixels(p, 1, h, w, 0); });
      if (rc === null) fail(tooLarge(name, bytes.length));
      else if (rc) fail(name + ': ' + message());
      else { show(answer(), name, 'png'); explain(); }
      if (done) done();
    });
  }, function () {
    fail(name + ': the browser could not decode it as a PNG');
    if (done) done();
  });
}

function fail(text) {
  status(text, true);
  last = null;
  $('p-lens').textContent = '–';
  $('p-bar').style.width = '0';
  $('p-words').textContent = 'No score: see the message on the left.';
  $('facts').innerHTML = '';
  ['c-image', 'c-map', 'c-overlay'].forEach(function (id) {
    var c = $(id), g = c.getContext('2d');
    g.fillStyle = '#111';
    g.fillRect(0, 0, c.width, c.height);
  });
}

function fact(dl, term, value) {
  var dt = document.createElement('dt'), dd = document.createElement('dd');
  dt.textContent = term;
  dd.textContent = value;
  dl.appendChild(dt);
  dl.appendChild(dd);
}

/* The score and what it was computed from. */
function show(a, name, kind) {
  var p = a.p_lens, dl = $('facts'), bands;
  last = a;
  last.name = name;
  $('p-lens').textContent = p.toFixed(3);
  $('p-bar').style.width = (100 * p).toFixed(1) + '%';
  $('p-bar').style.background = p >= 0.5 ? 'var(--good)' : 'var(--accent)';
  $('p-words').textContent = p >= 0.5 ? 'A lens candidate (p ≥ 0.5, the release\'s threshold).'
                                      : 'Not a lens candidate at the release\'s threshold of 0.5.';
  dl.innerHTML = '';
  fact(dl, 'input', name + ' (' + a.bands_in + ' band' + (a.bands_in > 1 ? 's' : '') + ', ' + a.height + ' × ' + a.width + ' pixels)');
  bands = a.model_bands.join(', ');
  fact(dl, 'finder', a.model + ': ' + a.input[0] + ' × ' + a.input[1] + ' × ' + a.input[2] + ', bands ' + bands);
  fact(dl, 'prepared', (a.height !== a.input[1] || a.width !== a.input[2] ? 'resampled (bilinear) to ' + a.input[1] + ' × ' + a.input[2] : 'used at its size') +
       (a.minmax ? '; each band min-max scaled to [0, 1]' : ''));
  if (a.unused_bands) fact(dl, 'bands', 'the first ' + a.input[0] + ' of ' + a.bands_in + ' used, in the order stored (the finder expects ' + bands + ')');
  if (a.filled_pixels) fact(dl, 'blank pixels filled', a.filled_pixels + ' NaN or infinite pixels left out of the resize, filled in from the pixels around them');
  if (a.nan_pixels || a.inf_pixels) fact(dl, 'blank pixels', (a.nan_pixels + a.inf_pixels) + ' NaN or infinite pixels set to 0');
  (a.warnings || []).forEach(function (w) { fact(dl, 'warning', w); });
  fact(dl, 'logits', a.classes.map(function (c, k) { return c + ' ' + a.logits[k].toFixed(4); }).join(', '));
  fact(dl, 'p(lens)', String(p));
  $('command').textContent = kind === 'png' ? 'lens predict takes FITS and .npy, not PNG; for a FITS file of the same pixels: lens predict --model weights/' + a.model + '.safetensors --resize FILE'
                           : 'lens predict --model weights/' + a.model + '.safetensors --resize ' + (kind === 'sim' ? 'build/sim/fits/' + pad7(a.index) + '.fits' : name);
  if (kind !== 'sim') $('params').hidden = true;
  status('Scored ' + name + ' with ' + a.model + '.');
}

function pad7(i) { var s = String(i); while (s.length < 7) s = '0' + s; return s; }

/* ---- explaining ---------------------------------------------------------------------------- */

function draw(k, id) {
  var w = M._lensweb_picture_width(), h = M._lensweb_picture_height(), rgb = M._lensweb_picture(k), c = $(id), g = c.getContext('2d'), img, i, n = w * h;
  c.width = w; c.height = h;
  img = g.createImageData(w, h);
  for (i = 0; i < n; i++) {
    img.data[4 * i] = M.HEAPU8[rgb + 3 * i];
    img.data[4 * i + 1] = M.HEAPU8[rgb + 3 * i + 1];
    img.data[4 * i + 2] = M.HEAPU8[rgb + 3 * i + 2];
    img.data[4 * i + 3] = 255;
  }
  g.putImageData(img, 0, 0);
}

function explain() {
  var rc, e, t0 = Date.now();
  if (!last) return;
  rc = M._lensweb_explain(method, 400, 0, 0);
  if (rc) { status('Explaining failed: ' + message(), true); return; }
  e = answer();
  draw(0, 'c-image'); draw(1, 'c-map'); draw(2, 'c-overlay');
  if (e.method === 'gradcam') {
    $('cap-map').textContent = 'Grad-CAM, layer ' + e.layer + ': ' + e.rows + ' × ' + e.cols + ' cells, ' + e.stride + ' px apart (magma: 0 to ' + fmt(e.hi) + ')';
    $('legend').textContent = 'Grad-CAM (Selvaraju et al. 2017): how much each cell of the last convolution\'s feature map pushes the score towards "lens". ' +
      'Each cell is drawn on the pixels it stands for, so the map covers only the middle of the cutout (the dashed outline); grey hatching marks where no cell lies.';
  } else {
    $('cap-map').textContent = 'Occlusion: ' + e.rows + ' × ' + e.cols + ' patches of ' + e.patch + ' px, stride ' + e.patch_stride +
      ' (blue lowers p, red raises it; ±' + fmt(e.hi) + ')';
    $('legend').textContent = 'Occlusion (Zeiler & Fergus 2014): p(lens) with a patch of the cutout set to 0, minus p(lens) of the whole cutout. ' +
      'Blue where hiding the patch lowers the lens probability: the pixels the finder relies on.';
  }
  $('cap-image').textContent = last.name + ' as ' + last.model + ' sees it (asinh stretch' + (last.arcsec > 0 ? ', scale bar in arcseconds' : '') + ')';
  t0 = (Date.now() - t0) / 1000;
  status('Scored ' + last.name + ' with ' + last.model + '; ' + (method ? 'occlusion' : 'Grad-CAM') + (t0 >= 0.1 ? ' in ' + t0.toFixed(1) + ' s.' : '.'));
}

function setMethod(m) {
  method = m;
  $('m-gradcam').className = 'toggle' + (m === 0 ? ' on' : '');
  $('m-occlusion').className = 'toggle' + (m === 1 ? ' on' : '');
  $('method-note').textContent = m === 1 ? 'occlusion runs the finder once per patch: a few seconds' : '';
  if (last) later(m ? 'Occluding patch by patch…' : 'Computing Grad-CAM…', explain);
}

/* ---- simulating ---------------------------------------------------------------------------- */

function simulate(lensOnly, done) {
  var seedBox = $('seed'), seed = Math.max(1, Math.min(4294967295, Math.floor(Number(seedBox.value) || 1)));
  later('Simulating (seed ' + seed + ')…', function () {
    var rc = M._lensweb_simulate(seed >>> 0, 0, lensOnly ? 1 : 0), a;
    if (rc) { fail('Simulation failed: ' + message()); if (done) done(); return; }
    a = answer();
    show(a, 'simulated object (seed ' + seed + ')', 'sim');
    explain();
    showParams(a);
    if ($('next-seed').checked && !done) seedBox.value = String(seed % 4294967295 + 1);
    if (done) done();
  });
}

function showParams(a) {
  var names = a.label_header.split(','), values = a.label_row.split(','), byName = {}, t = $('param-table'), all = $('param-all'), i;
  for (i = 0; i < names.length; i++) byName[names[i]] = values[i];
  t.innerHTML = '';
  all.innerHTML = '';
  PARAMS.forEach(function (p) {
    var v = byName[p[0]], tr;
    if (v === undefined || (byName.label === '0' && p[0] !== 'kind' && Number(v) === 0)) return;
    tr = t.insertRow();
    tr.insertCell().textContent = p[1];
    tr.insertCell().textContent = p[0];
    tr.insertCell().textContent = (isNaN(Number(v)) ? v.replace(/_/g, '-') : v) + (p[2] ? ' ' + p[2] : '');
    tr.cells[2].className = 'num';
  });
  for (i = 0; i < names.length; i++) {
    var tr = all.insertRow();
    tr.insertCell().textContent = names[i];
    tr.insertCell().textContent = values[i];
  }
  $('sim-command').innerHTML = '';
  $('sim-command').appendChild(document.createTextNode('Object ' + a.index + ' of ' +
    'lens sim --preset euclid-lensfinding --layout ou200 ' + (a.lens_only ? '--lens-fraction 1 ' : '') + '--seed ' + a.seed + ' --n 1 --fits --out build/sim' +
    ' (its VIS band, 200 × 200 pixels at 0.1″; class ' + byName.label + ' = ' + (byName.label === '1' ? 'lens' : 'non-lens') + '). ' +
    'The parameters are those of its labels.csv; the noise may differ in detail from the command\'s file, ' +
    'since the native build fuses multiply-adds where the CPU can and one draw that rounds otherwise shifts the draws after it.'));
  $('params').hidden = false;
}

/* ---- wiring -------------------------------------------------------------------------------- */

function readFile(file) {
  var r = new FileReader();
  if (busy) {
    refused = file.name;
    status(file.name + ': the page is busy with the current job; open it again when that finishes.');
    return;
  }
  r.onload = function () { openBytes(file.name, new Uint8Array(r.result)); };
  r.onerror = function () { fail(file.name + ': could not be read'); };
  r.readAsArrayBuffer(file);
}

function wire() {
  var drop = $('drop');
  ['dragenter', 'dragover'].forEach(function (ev) {
    drop.addEventListener(ev, function (e) { e.preventDefault(); drop.className = 'over'; });
  });
  ['dragleave', 'drop'].forEach(function (ev) {
    drop.addEventListener(ev, function (e) { e.preventDefault(); drop.className = ''; });
  });
  drop.addEventListener('drop', function (e) {
    var files = e.dataTransfer.files;
    if (files.length > 1) status('One file at a time: scoring ' + files[0].name + '.');
    if (files.length) readFile(files[0]);
  });
  /* a file dropped beside the box must not replace the page */
  window.addEventListener('dragover', function (e) { e.preventDefault(); });
  window.addEventListener('drop', function (e) { e.preventDefault(); });
  $('file').addEventListener('change', function () { if (this.files.length) readFile(this.files[0]); this.value = ''; });
  Object.keys(SAMPLES).forEach(function (id) {
    $(id).addEventListener('click', function () { openBytes(SAMPLES[id].path, bytesOf(SAMPLES[id].file)); });
  });
  $('sim-lens').addEventListener('click', function () { simulate(true); });
  $('sim-any').addEventListener('click', function () { simulate(false); });
  $('m-gradcam').addEventListener('click', function () { setMethod(0); });
  $('m-occlusion').addEventListener('click', function () { setMethod(1); });
}

/* ---- self-test (tests/test_web.sh opens index.html?selftest) -------------------------------- */

/* The pictures' pixels: whether a canvas is uniform, and how many pixels two canvases differ in. */
function pixels(id) { var c = $(id); return c.getContext('2d').getImageData(0, 0, c.width, c.height).data; }
function distinct(d) { var seen = {}, n = 0, i; for (i = 0; i < d.length && n < 50; i += 4) { var k = d[i] + ',' + d[i + 1] + ',' + d[i + 2]; if (!seen[k]) { seen[k] = 1; n++; } } return n; }
function differing(a, b) { var n = 0, i; for (i = 0; i < a.length; i += 4) n += a[i] !== b[i] || a[i + 1] !== b[i + 1] || a[i + 2] !== b[i + 2]; return n; }

function canvasReport() {
  var img = pixels('c-image'), map = pixels('c-map'), over = pixels('c-overlay');
  return {size: $('c-image').width, image_colours: distinct(img), map_colours: distinct(map), overlay_differs: differing(img, over)};
}

/* Headless Chromium's --virtual-time-budget runs timers in virtual time, which jumps ahead
 * whenever no task is due: while the page waits for the browser (compiling the module, decoding
 * a PNG) with no timer pending, it could jump to the end of the budget and end the run early. A
 * heartbeat (a timer every millisecond doing a little real work) keeps it in small steps until
 * the self-test is over. */
var selftestOver = false;
function heartbeat() {
  var x = 0, i;
  for (i = 0; i < 100000; i++) x += i % 7;
  if (!selftestOver && x >= 0) setTimeout(heartbeat, 1);
}

function selftest() {
  var out = {}, steps = [];
  function step(f) { steps.push(f); }
  function next() {
    var f = steps.shift();
    if (f) setTimeout(function () { f(next); }, 10);
    else { var pre = $('selftest'); pre.textContent = 'SELFTEST ' + JSON.stringify(out) + ' END'; pre.hidden = false; selftestOver = true; }
  }
  step(function (go) { /* not a FITS file: a clear message, no crash */
    openBytes('notes.fits', new TextEncoder().encode('this is not a FITS file'), function () {
      out.bad_fits = {status: $('status').textContent, error: $('status').className === 'error'}; go();
    });
  });
  step(function (go) { /* a .png that is not one */
    openBytes('broken.png', new Uint8Array([0x89, 0x50, 0x4e, 0x47, 13, 10, 26, 10, 0, 0, 0, 0]), function () {
      out.bad_png = {status: $('status').textContent, error: $('status').className === 'error'}; go();
    });
  });
  step(function (go) { /* a file larger than the module's memory can hold (its length alone: 3 GB, which the
                          * allocator refuses; the bytes are never read): a message naming it */
    openBytes('huge.fits', {length: 3e9}, function () {
      out.too_large = {status: $('status').textContent, error: $('status').className === 'error'}; go();
    });
  });
  step(function (go) { /* a file dropped while the page is busy: said, and said again after the job */
    busy = true;
    readFile(new File(['SIMPLE'], 'late.fits'));
    out.busy = {status: $('status').textContent};
    busy = false;
    openBytes('notes.fits', new TextEncoder().encode('this is not a FITS file'), function () {
      setTimeout(function () { out.busy.after = $('status').textContent; go(); }, 10);
    });
  });
  step(function (go) { /* a FITS table-less header with no image: the library's message */
    var h = 'SIMPLE  =                    T' + Array(51).join(' ') + 'BITPIX  =                  -32' + Array(51).join(' ') +
            'NAXIS   =                    1' + Array(51).join(' ') + 'NAXIS1  =                    5' + Array(51).join(' ') + 'END';
    openBytes('one_axis.fits', new TextEncoder().encode(h + Array(2880 - h.length + 1).join(' ') + Array(2881).join('\0')), function () {
      out.one_axis = {status: $('status').textContent, error: $('status').className === 'error'}; go();
    });
  });
  step(function (go) { /* a blank 50 x 50 FITS image at 0.05"/pixel: scored, with what the score cannot know */
    function card(s) { return (s + Array(81).join(' ')).slice(0, 80); }
    function kv(k, v) { return card((k + '        ').slice(0, 8) + '= ' + (Array(21).join(' ') + v).slice(-20)); }
    var h = kv('SIMPLE', 'T') + kv('BITPIX', '-32') + kv('NAXIS', '2') + kv('NAXIS1', '50') + kv('NAXIS2', '50') +
            kv('PIXSCALE', '0.05') + card('END');
    var bytes = new Uint8Array(2880 + 11520);
    bytes.set(new TextEncoder().encode(h + Array(2880 - h.length + 1).join(' ')));
    openBytes('blank.fits', bytes, function () {
      out.blank = {p_lens: last ? last.p_lens : null, warnings: last ? last.warnings.join(' | ') : '', status: $('status').textContent}; go();
    });
  });
  step(function (go) { /* a PNG drawn here: decoded, scored, explained */
    var c = document.createElement('canvas'), g, x;
    c.width = 64; c.height = 48;
    g = c.getContext('2d');
    g.fillStyle = '#000'; g.fillRect(0, 0, 64, 48);
    g.strokeStyle = '#fff'; g.lineWidth = 3; g.beginPath(); g.arc(32, 24, 12, 0.3, 2.8); g.stroke();
    x = atob(c.toDataURL('image/png').split(',')[1]);
    var bytes = new Uint8Array(x.length), i;
    for (i = 0; i < x.length; i++) bytes[i] = x.charCodeAt(i);
    openBytes('arc.png', bytes, function () {
      /* createImageBitmap resolves later than the scoring it schedules */
      setTimeout(function wait() {
        if (busy) return setTimeout(wait, 50);
        out.png = {p_lens: last ? last.p_lens : null, height: last ? last.height : 0, status: $('status').textContent}; go();
      }, 50);
    });
  });
  step(function (go) { /* occlusion of the sample lens */
    last = null; /* (so that the switch does not explain the PNG again) */
    setMethod(1);
    openBytes('samples/vis/0000002_VIS.fits', bytesOf('0000002_VIS.fits'), function () {
      out.occlusion = {p_lens: last ? last.p_lens : null, canvas: canvasReport()}; setMethod(0);
      setTimeout(function wait() { if (busy) return setTimeout(wait, 50); go(); }, 50);
    });
  });
  step(function (go) { /* the sample lens with Grad-CAM */
    openBytes('samples/vis/0000002_VIS.fits', bytesOf('0000002_VIS.fits'), function () {
      out.sample = last ? {name: last.name, model: last.model, p_lens: last.p_lens, logits: last.logits, canvas: canvasReport()} : {status: $('status').textContent};
      go();
    });
  });
  step(function (go) { /* a simulated lens and its parameters: what the screenshot shows */
    $('seed').value = '36';
    simulate(true, function () {
      out.simulated = last ? {p_lens: last.p_lens, label_row: last.label_row, params_rows: $('param-table').rows.length, canvas: canvasReport()} : {status: $('status').textContent};
      go();
    });
  });
  next();
}

/* ---- start --------------------------------------------------------------------------------- */

function start() {
  var testing = /[?&]selftest\b/.test(location.search);
  if (testing) heartbeat();
  wire();
  setButtons(false);
  if (typeof LENS_DATA === 'undefined' || typeof LensWeb === 'undefined') {
    status('lens_data.js or lens_web.js is missing beside index.html: build the page with make web.', true);
    selftestOver = true;
    return;
  }
  LensWeb().then(function (module) {
    var failed = '';
    M = module;
    FINDERS.forEach(function (f) {
      var rc = withBytes(bytesOf(f.file), function (p, n) {
        return M.ccall('lensweb_load_model', 'number', ['number', 'number', 'number', 'string'], [f.slot, p, n, f.name]);
      });
      if (rc === null) failed += tooLarge(f.file, bytesOf(f.file).length) + ' ';
      else if (rc) failed += f.file + ': ' + message() + ' ';
    });
    if (failed) { selftestOver = true; status(failed, true); return; }
    setButtons(true);
    status('Ready: OU_VIS and OU_66 loaded. Drop a cutout, open a sample or simulate a lens.');
    if (testing) selftest();
  }, function (e) {
    selftestOver = true;
    status('This browser could not start the WebAssembly module: ' + e, true);
  });
}

start();
