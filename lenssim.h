/* lenssim.h - strong gravitational lens simulator that agrees with lenstronomy - v0.3.0 - MIT licence
 *
 * Renders images of strong gravitational lenses: cosmological distances, mass profiles, light
 * profiles, single- and multi-plane ray tracing, supersampling, PSFs, noise and survey bands.
 * It follows lenstronomy 1.14's conventions and keyword names, so that a lenstronomy model moves
 * over unchanged and renders the same image (parity to 1e-3 of the peak is tested; in practice
 * the images agree to about 1e-7 of the peak).
 *
 * BUILD
 *   In exactly one C or C++ file:      #define LENSSIM_IMPLEMENTATION
 *                                      #include "lenssim.h"
 *   Everywhere else just include it. Link with libm. C99 or C++; no other dependency.
 *   Version 0.3.0 (LENSSIM_VERSION_MAJOR/MINOR/PATCH/STRING), shared with lensnet.h and lensviz.h.
 *
 * TEN LINES
 *     lenssim_mass sie = {0}; lenssim_light src = {0}; lenssim_scene scene = {0};  // zero: defaults
 *     static double image[100 * 100]; lenssim_error err;
 *     sie.kind = LENSSIM_MASS_SIE; sie.theta_E = 1.2; sie.e1 = 0.1; sie.e2 = -0.05;
 *     src.kind = LENSSIM_LIGHT_SERSIC_ELLIPSE; src.amp = 20; src.R_sersic = 0.25; src.n_sersic = 1.5;
 *     scene.grid.num_pix = 100; scene.grid.pixel_scale = 0.05; scene.grid.supersampling = 3;
 *     scene.lens.lenses = &sie; scene.lens.num_lenses = 1;
 *     scene.source_light = &src; scene.num_source_light = 1;
 *     scene.psf.kind = LENSSIM_PSF_GAUSSIAN; scene.psf.fwhm = 0.16;
 *     if (lenssim_render(&scene, image, NULL, 0, &err) != LENSSIM_OK) puts(err.message);
 *   (Or load the scene from JSON text with lenssim_scene_from_json, below.)
 *
 * WHAT IS IN IT
 *   Physics and conventions:
 *     Units: angles in arcsec; distances in Mpc; redshifts dimensionless; surface brightness
 *     `amp` in counts/s/arcsec^2 (lenstronomy's convention), image pixels in counts/s (= e-/s
 *     when the band's zero point is in electrons).
 *     Grid: an n x n image, pixel (row i, column j) is centred on
 *       x = (j - (n-1)/2) * pixel_scale,   y = (i - (n-1)/2) * pixel_scale
 *     (row 0 at the most negative y, as in a NumPy array shown with origin='lower').
 *     Supersampling s: each pixel is sampled on a regular s x s grid of sub-pixel centres; the
 *     pixel value is the mean of the samples times the pixel area (surface brightness integrated
 *     over the pixel), as lenstronomy's regular supersampling does.
 *     Ellipticity (lenstronomy): phi = atan2(e2, e1)/2, c = min(sqrt(e1^2+e2^2), 0.9999),
 *       q = (1-c)/(1+c); so e1 = (1-q)/(1+q) cos 2phi, e2 = (1-q)/(1+q) sin 2phi. A profile's frame
 *       is x' = dx cos phi + dy sin phi, y' = -dx sin phi + dy cos phi (dx, dy from its centre);
 *       deflections are rotated back by -phi.
 *     Mass profiles (reduced deflection angles alpha, lens equation beta = theta - alpha):
 *       SIS         alpha = theta_E (dx, dy)/r
 *       SIE         Kormann, Schneider & Bartelmann 1994; Keeton & Kochanek 1998 in the limit of a
 *                   vanishing core, written as lenstronomy's NIE with s = 1e-10/sqrt(q):
 *                   b = theta_E sqrt(q), psi = sqrt(q^2 (s^2 + x'^2) + y'^2),
 *                   alpha_x' = b/sqrt(1-q^2) atan(sqrt(1-q^2) x'/(psi + s)),
 *                   alpha_y' = b/sqrt(1-q^2) atanh(sqrt(1-q^2) y'/(psi + q^2 s)); q >= 1 -> 0.99999999.
 *                   theta_E is the product-average (circularised) Einstein radius.
 *       EPL         elliptical power law, Tessore & Metcalf 2015 (A&A 580, A79): kappa =
 *                   (3-gamma)/2 (theta_E / sqrt(q x'^2 + y'^2/q))^(gamma-1); the deflection is their
 *                   eq. 22-23, the Gauss hypergeometric 2F1(1, t/2; 2-t/2; -(1-q)/(1+q) e^{2i varphi})
 *                   summed as a power series to machine precision (t = gamma - 1, b = theta_E sqrt(q)).
 *       NFW         spherical Navarro, Frenk & White 1996, lensing as in Golse & Kneib 2002 and
 *                   lenstronomy: scale radius Rs and deflection alpha_Rs at R = Rs.
 *       POINT_MASS  alpha = theta_E^2 (dx, dy)/r^2
 *       SHEAR       alpha = (gamma1 x + gamma2 y, gamma2 x - gamma1 y), about the origin (or ra_0,
 *                   dec_0 when given)
 *       CONVERGENCE alpha = kappa (x, y), a mass sheet about the origin
 *       LINE_MASS   a thin uniform rod (a DeepLense "vortex"): length, angle, and line_density
 *                   Lambda (convergence integrated across the rod, arcsec); in the rod's frame
 *                   alpha_u = Lambda/(2 pi) ln(((u+L/2)^2+v^2)/((u-L/2)^2+v^2)),
 *                   alpha_v = Lambda/pi (atan2(v, u-L/2) - atan2(v, u+L/2)). Not a lenstronomy model.
 *     Light profiles:
 *       SERSIC, SERSIC_ELLIPSE  I = amp exp(-b_n ((R/R_sersic)^(1/n) - 1)), b_n = 1.9992 n - 0.3271
 *                   (Capaccioli 1989, floored at 1e-5), R = sqrt(q x'^2 + y'^2/q) (product-average
 *                   radius, so R_sersic is the circularised half-light radius), R floored at 1e-4.
 *       GAUSSIAN    I = amp/(2 pi sigma^2) exp(-r^2/(2 sigma^2)) (amp is the total flux)
 *       GAUSSIAN_ELLIPSE  the same with r^2 = q x'^2 + y'^2/q
 *       clumpy star-forming sources: lenssim_clumpy_source() makes a Sersic disc plus Gaussian
 *                   star-forming clumps scattered over it (the scene type "CLUMPY").
 *     Distances: flat LambdaCDM without radiation (astropy's FlatLambdaCDM with Tcmb0 = 0):
 *       D_C(z) = (c/H0) int_0^z dz'/E(z'), E = sqrt(Om0 (1+z)^3 + 1 - Om0), by composite
 *       Gauss-Legendre quadrature (agrees with astropy to 1e-14); D_A(z1, z2) = (D_C(z2)-D_C(z1))/(1+z2).
 *     Multi-plane ray tracing (Blandford & Narayan 1986; lenstronomy's recurrence), with
 *       T(z1, z2) = D_C(z2) - D_C(z1): start at x = 0, a = theta; for each lens plane i in order of
 *       redshift, strictly below the source's redshift: x += a T(z_prev, z_i); theta_i = x/T(0, z_i);
 *       a -= alpha_i(theta_i) D_A(0, z_conv)/D_A(z_i, z_conv); finally x += a T(z_last, z_s) and
 *       beta = x/T(0, z_s). Each lens's theta_E (or alpha_Rs, kappa, gamma) refers to a source at
 *       z_conv = z_source_convention. Several source planes (double source plane lenses): each
 *       light entry may have its own redshift; the lens light is not lensed.
 *     PSF (applied to the binned image, after supersampling, as lenstronomy does):
 *       GAUSSIAN  sigma = fwhm / (2 sqrt(2 ln 2)), separable, truncated at 5 sigma, kernel sampled
 *                 and normalised as scipy.ndimage.gaussian_filter (radius = int(5 sigma + 0.5)),
 *                 edges replicated (mode 'nearest').
 *       MOFFAT    (Moffat 1969) I ~ (1 + (r/alpha)^2)^-beta, alpha = fwhm/(2 sqrt(2^(1/beta) - 1)),
 *                 sampled at pixel centres on a square of half-width ceil(3 fwhm / pixel_scale)
 *                 pixels, normalised, convolved with zeros outside the image.
 *       PIXEL     a caller's odd-sized kernel, normalised to unit sum, convolved with zeros outside
 *                 the image (as scipy.signal.fftconvolve(mode='same') in lenstronomy).
 *     Noise (lenssim_add_noise): the image in counts/s times the total exposure plus the sky gives
 *       the expected electrons; they are drawn from a Poisson distribution, read noise (per
 *       exposure, Gaussian) is added, the result is quantised to whole ADU (ccd_gain e-/ADU), the
 *       sky is subtracted and the image is divided back by the exposure time. The random numbers
 *       come from an explicit xoshiro256** state seeded with splitmix64 (Blackman & Vigna 2018);
 *       Poisson variates use multiplication of uniforms below a mean of 10 and Hoermann's (1993)
 *       transformed rejection (PTRS) above, so large means are exact and fast.
 *     Bands (lenssim_band_find): Euclid VIS, NISP Y/J/H, HSC g/r/i, an HST WFC3 F160W-like band
 *       and CHALLENGE1_VIS (the space-based images of lens-finding challenge 1), each with pixel
 *       scale, zero point (magnitude of 1 e-/s), exposure, number of exposures, sky
 *       brightness (mag/arcsec^2), read noise, gain and PSF. lenssim_magnitude_to_counts() and
 *       lenssim_sersic_amp_from_magnitude() turn magnitudes into counts/s and Sersic amplitudes.
 *       A scene seen through a band (lenssim_band_observe, what `lens render --band` does): the
 *       band's sky is per band pixel, so the sky per scene pixel is scaled by the pixel area,
 *       (scene pixel_scale / band pixel_scale)^2; a scene without a PSF of its own gets the band's.
 *
 *   Scenes from JSON (lenssim_scene_from_json: text in memory -> a scene ready to render):
 *     {"grid": {"num_pix": 80, "pixel_scale": 0.05, "supersampling": 3},
 *      "lens": [{"type": "SIE", "theta_E": 0.9, "e1": 0.05, "e2": -0.05}, {"type": "SHEAR", ...}],
 *      "lens_light": [...], "source_light": [...], "kind": "any text",
 *      "psf": {"type": "NONE" | "GAUSSIAN" (fwhm) | "MOFFAT" (fwhm, beta) | "PIXEL" (kernel: rows)},
 *      "cosmology": {"H0": 70, "Om0": 0.3}, "multi_plane": {"lens_redshifts": [...], "z_source": 2,
 *      "z_source_convention": 2, "source_redshifts": [one per source_light entry]}}
 *     Models and keywords are lenstronomy's (SHEAR, CONVERGENCE: ra_0, dec_0), plus LINE_MASS and
 *     the light "CLUMPY" (SERSIC_ELLIPSE's keywords, num_clumps, clump_fraction, clump_sigma, seed),
 *     which expands into lenssim_clumpy_source's profiles. Only grid is required; keywords left out
 *     are 0 (or the struct's default). One table per model holds each keyword's field, range and
 *     whether it is required; the same rows check scenes built in C (lenssim_scene_check). Unknown,
 *     repeated, missing or mistyped keys and unknown models are errors naming the entry
 *     ("lens[1] 'SIE': missing keyword 'theta_E'"); syntax errors give the line and column.
 *
 *   Populations and datasets (docs/populations.md has the numbers):
 *     lenssim_dataset_init(&ds, &config, seed, &err) resolves a preset (euclid-lensfinding,
 *     euclid-compound, deeplense-substructure, ensai-modelling) and a layout (ou66, ou200, hsc,
 *     hst192, hst150, challenge1-vis);
 *     lenssim_dataset_sample(&ds, i, image, &label, workspace, bytes, &err) renders
 *     object i as float image[channels][num_pix][num_pix] (counts/s per output pixel) with a label
 *     holding every parameter. Object i depends only on (configuration, seed, i): each object's
 *     random streams are seeded from a hash of (seed, i, stream), so any order and any number of
 *     threads give the same objects. Lenses (class 1) among objects follow lens_fraction exactly in
 *     every window (object i is a lens when floor(i f + u0) steps up). lenssim_preset_class_names
 *     names a preset's classes ("non-lens,lens"); lenssim_label_csv_header and
 *     lenssim_label_csv_row format labels as the rows of `lens sim`'s labels.csv (index, then the
 *     label's fields in order; docs/populations.md is the reference for what each column holds).
 *     Deflectors as Collett 2015 (ApJ 811, 20): z uniform in comoving volume, sigma_v from the VDF
 *     of Choi, Park & Vogeley 2007, SIE with theta_E = 4 pi (sigma_v/c)^2 D_ls/D_s, shear, light
 *     following the mass (Faber-Jackson luminosity, sigma-R_e size); sources with number-count
 *     magnitudes, a size-magnitude relation, Sersic n in [0.5, 4], optionally clumpy; kept, as
 *     Collett's LensPop code selects, when multiply imaged (lenssim_count_images), resolved
 *     (2 theta_E^2 >= 4 R_s^2 + FWHM^2), magnified >= 3, tangentially resolved (mu R_s > FWHM)
 *     and with arc S/N >= 20 in the detection band (lenssim_arc_snr: the best sum S/sqrt(sum
 *     sigma^2) over pixels taken in decreasing S/sigma). Non-lenses: ellipticals, discs, pairs, ring galaxies, mergers, stars,
 *     empty sky. Compound arcs (two lens planes) and double rings (two source planes) use the
 *     multi-plane tracer; the DeepLense classes follow DeepLenseSim's Model I (one fixed SIE, its
 *     Sersic source and noise, no selection) with 25 point-mass subhalos or a LINE_MASS vortex.
 *     Survey layouts: OU-66 renders VIS at 0.1" and sums 3x3 blocks, OU-200 renders
 *     NISP at 0.3" and resamples bilinearly (flux conserved).
 *
 *   Precision and speed:
 *     The public functions that return deflections, convergence, magnification and surface
 *     brightness work in double precision (deflections match lenstronomy to 1e-12 or better).
 *     lenssim_render evaluates its sub-pixel samples in float32 by default (double_precision = 0
 *     in the scene): the hot loops are branch-free, with the header's own exp/log/atan/sqrt, so
 *     compilers vectorise them (SSE/AVX/AVX-512/NEON, whatever the flags allow; no intrinsics).
 *     Each sample is then good to ~1e-7 relative; images agree with the double-precision path to
 *     ~1e-5 of their peak and with lenstronomy to ~1e-5 (tested bound 1e-3). Pixel sums, PSF and
 *     noise are in double.
 *     A 200x200 Euclid VIS image (SIE + shear, two Sersic profiles, supersampling 3, Gaussian PSF,
 *     noise) takes about 2.9 ms on one core of a 2.3 GHz AVX-512 Xeon, a two-plane compound lens
 *     about 4.1 ms: over 100 times lenstronomy on the same machine (tests/bench_lenssim.c). The
 *     double-precision render is about 3 times slower. A dataset object costs more than one
 *     render: its draws until the selection accepts one (about 18 for a galaxy-galaxy lens),
 *     neighbours, every band, PSF and noise; one thread makes about 30-60 objects a second of
 *     euclid-lensfinding, 12 of euclid-compound, 140 of deeplense-substructure
 *     (docs/performance.md, "lens sim"). lenssim_label.attempts counts an object's draws.
 *
 *   API summary (see the declarations for each function's contract):
 *     lenssim_result_string                    text of a result, never NULL
 *     lenssim_comoving_distance, lenssim_angular_diameter_distance
 *     lenssim_mass_kind_from_name / _name, lenssim_light_kind_from_name / _name
 *     lenssim_lens_check, lenssim_light_check, lenssim_lens_model_check, lenssim_scene_check
 *                                              validate, naming the entry and the bad value
 *     lenssim_scene_from_json, lenssim_json_scene_free   a scene from JSON text
 *     lenssim_ray_shoot, lenssim_deflection    arrays of positions -> source positions / alphas
 *     lenssim_convergence, lenssim_magnification
 *     lenssim_light_surface_brightness
 *     lenssim_render_workspace_bytes, lenssim_render   (caller's workspace, or one allocation)
 *     lenssim_psf_scratch_doubles, lenssim_psf_convolve
 *     lenssim_rng_seed, lenssim_rng_next, lenssim_rng_uniform, lenssim_rng_normal, lenssim_rng_poisson
 *     lenssim_band_count, lenssim_band_at, lenssim_band_find, lenssim_noise_from_band,
 *     lenssim_add_noise, lenssim_band_observe, lenssim_magnitude_to_counts,
 *     lenssim_render_json                      JSON scene -> image, optionally with a band's noise
 *     lenssim_sersic_amp_from_counts, lenssim_sersic_amp_from_magnitude
 *     lenssim_clumpy_source
 *     lenssim_einstein_radius_sis, lenssim_velocity_dispersion_function, lenssim_count_images,
 *     lenssim_arc_snr
 *     lenssim_preset_name / _from_name, lenssim_layout_name / _from_name, lenssim_kind_name,
 *     lenssim_preset_class_names
 *     lenssim_dataset_init, lenssim_dataset_image_floats, lenssim_dataset_workspace_bytes,
 *     lenssim_dataset_kind, lenssim_dataset_sample, lenssim_dataset_sample_kind
 *     lenssim_label_csv_header, lenssim_label_csv_row   labels.csv text, no file I/O
 *     lenssim_field_init, lenssim_field_image_floats, lenssim_field_place,
 *     lenssim_field_render_object, lenssim_field_add, lenssim_field_finish, lenssim_field_render
 *                                              survey fields: many objects, one noise, a truth table
 *     lenssim_field_windows_resolve, lenssim_field_windows
 *                                              training windows cut from a field, as a scan sees it
 *
 * ERRORS
 *   Functions that can fail return lenssim_result (an X-macro list, LENSSIM_RESULTS;
 *   lenssim_result_string never returns NULL) and take an optional lenssim_error * that receives
 *   the result and a sentence naming the entry and the value at fault, e.g.
 *   "lens[1] 'SIE': missing keyword 'theta_E'". There is no global error state.
 *
 * CONFIGURATION (macros defined before the implementation is included)
 *   LENSSIM_STATIC            every public function becomes `static` (private copy per file)
 *   LENSSIM_API               linkage of public functions (default `extern`)
 *   LENSSIM_MALLOC(sz), LENSSIM_FREE(p)   allocator, both or neither (default malloc/free).
 *                             Used when the caller passes no workspace (lenssim_render,
 *                             lenssim_dataset_sample), for JSON scenes (lenssim_render_json, a
 *                             PIXEL kernel) and by the data sets and fields (lenssim_dataset_*,
 *                             lenssim_field_*).
 *   LENSSIM_MAX_PIXELS        largest image side accepted (default 8192)
 *   LENSSIM_MAX_SUPERSAMPLING largest supersampling factor accepted (default 32)
 *   LENSSIM_NO_OPTIMIZE_PRAGMA  with GCC, optimised builds compile the implementation at -O3
 *                             (#pragma GCC optimize, restored afterwards) because GCC's -O2 does
 *                             not vectorise the render loops; define this to keep your options
 *
 * MEMORY
 *   lenssim_render takes a caller workspace of lenssim_render_workspace_bytes(scene) bytes, or
 *   allocates one per call when given none. A JSON scene lives in the caller's
 *   lenssim_json_scene; only a PIXEL kernel is allocated (lenssim_json_scene_free frees it).
 *   lenssim_dataset is about 42 KB (tables included: keep it off small stacks); each sampling thread needs
 *   lenssim_dataset_workspace_bytes() of workspace (about 1.6 MB for OU-66 or OU-200) and
 *   about 64 KB of stack. Object i never fails for a valid configuration unless the selection rejects 1000
 *   draws in a row (a very narrow theta_E window, say): then LENSSIM_ERR_RANGE names the object.
 *
 * THREADS
 *   No global mutable state: every function is safe to call from several threads on distinct
 *   buffers and RNG states. Results are deterministic for a given build: the same scene and seed
 *   give bit-identical images, whatever the vector width (the random numbers are drawn in a fixed
 *   order). Transcendental functions in the hot loops are the header's own, so results do not
 *   depend on the platform's libm there; they may differ between builds in the last bits (FMA is
 *   used where the target has it).
 *
 * LIMITS
 *   At most LENSSIM_MAX_PROFILES (64) lens, lens light and source entries each per scene.
 *   Image side <= LENSSIM_MAX_PIXELS, supersampling <= LENSSIM_MAX_SUPERSAMPLING, all sizes
 *   are checked for overflow before use. Accepted ranges (anything else is LENSSIM_ERR_RANGE
 *   with a message): |e| < 1 (capped at 0.9999 as lenstronomy does; the EPL series needs more
 *   terms as q -> 0, up to ~1000 at q = 0.02), 1 < gamma < 2.9, theta_E in [0, 1000], Rs > 0,
 *   |gamma1|, |gamma2| <= 1, |kappa| <= 10, R_sersic > 0, 0 < n_sersic <= 20, sigma > 0,
 *   centres within 1e4 arcsec, redshifts in (0, 1100), lens redshifts below z_source_convention.
 *   JSON scenes: nesting up to 64 levels, numbers up to 127 characters, PIXEL kernels up to
 *   1001 x 1001; the reader allocates nothing else and recurses no deeper.
 *   Noise: Poisson draws are exact up to means of 2^48 electrons per pixel, normal beyond.
 *   What it does not do:
 *     No file I/O (it reads scenes from JSON text in memory and fills caller buffers).
 *     No adaptive or partial supersampling, no PSF convolution on the supersampled grid, no
 *     point sources (quasar images), no time delays, no line-of-sight or non-flat cosmologies, no
 *     radiation or massive neutrinos in the expansion rate, no elliptical NFW, no shapelets or
 *     pixelised sources, no detector effects beyond Poisson, sky, read noise and gain (no
 *     cosmic rays, flat fields, charge transfer, PSF variation across the field).
 *
 * LICENCE
 *   MIT, the same text in lensnet.h, lenssim.h, lensviz.h and LICENSE (at the end of this file).
 */
#ifndef LENSSIM_H
#define LENSSIM_H

/* The toolkit's version, shared by lensnet.h, lenssim.h and lensviz.h (semantic versioning). */
#define LENSSIM_VERSION_MAJOR 0
#define LENSSIM_VERSION_MINOR 3
#define LENSSIM_VERSION_PATCH 0
#define LENSSIM_VERSION_STRING "0.3.0"

#include <stddef.h>
#include <stdint.h>

#ifndef LENSSIM_API
#ifdef LENSSIM_STATIC
#if defined(__GNUC__) || defined(__clang__)
#define LENSSIM_API static __attribute__((unused)) /* a subset of the API may be used: no warnings */
#else
#define LENSSIM_API static
#endif
#else
#define LENSSIM_API extern
#endif
#endif

#ifndef LENSSIM_MAX_PIXELS
#define LENSSIM_MAX_PIXELS 8192
#endif
#ifndef LENSSIM_MAX_SUPERSAMPLING
#define LENSSIM_MAX_SUPERSAMPLING 32
#endif
#define LENSSIM_MAX_PROFILES 64

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------------------------------
 * Results and errors
 * ------------------------------------------------------------------------------------------- */
#define LENSSIM_RESULTS(X) \
  X(LENSSIM_OK,            "ok") \
  X(LENSSIM_ERR_ARG,       "invalid argument") \
  X(LENSSIM_ERR_RANGE,     "value out of range") \
  X(LENSSIM_ERR_UNKNOWN,   "unknown name or kind (model, preset, layout, PSF)") \
  X(LENSSIM_ERR_NOMEM,     "out of memory") \
  X(LENSSIM_ERR_TOO_LARGE, "size exceeds the configured limits") \
  X(LENSSIM_ERR_WORKSPACE, "workspace too small") \
  X(LENSSIM_ERR_SYNTAX,    "malformed JSON") \
  X(LENSSIM_ERR_SCENE,     "missing, unknown, repeated or mistyped scene keyword")

typedef enum {
#define LENSSIM__ENUM(name, text) name,
  LENSSIM_RESULTS(LENSSIM__ENUM)
#undef LENSSIM__ENUM
  LENSSIM_RESULT_COUNT
} lenssim_result;

/* Never returns NULL. */
LENSSIM_API const char *lenssim_result_string(lenssim_result r);

/* Detail of a failure: every function that checks user input takes an optional (NULL allowed)
 * lenssim_error and writes a sentence naming the entry and the value at fault. */
typedef struct {
  lenssim_result result;
  char message[256];
} lenssim_error;

/* ---------------------------------------------------------------------------------------------
 * Cosmology: flat LambdaCDM without radiation
 * ------------------------------------------------------------------------------------------- */
typedef struct {
  double H0;  /* km/s/Mpc; 0 means 70 */
  double Om0; /* matter density today; 0 means 0.3 */
} lenssim_cosmology;

/* Line-of-sight comoving distance between z1 and z2 in Mpc (negative if z2 < z1). */
LENSSIM_API double lenssim_comoving_distance(const lenssim_cosmology *c, double z1, double z2);
/* Angular diameter distance of z2 seen from z1 (z1 <= z2), in Mpc. */
LENSSIM_API double lenssim_angular_diameter_distance(const lenssim_cosmology *c, double z1, double z2);

/* ---------------------------------------------------------------------------------------------
 * Mass and light profiles. Fields a kind does not use are ignored; names follow lenstronomy.
 * ------------------------------------------------------------------------------------------- */
typedef enum {
  LENSSIM_MASS_SIS, LENSSIM_MASS_SIE, LENSSIM_MASS_EPL, LENSSIM_MASS_NFW,
  LENSSIM_MASS_POINT_MASS, LENSSIM_MASS_SHEAR, LENSSIM_MASS_CONVERGENCE, LENSSIM_MASS_LINE_MASS,
  LENSSIM_MASS_KIND_COUNT
} lenssim_mass_kind;

typedef struct {
  lenssim_mass_kind kind;
  double theta_E;            /* SIS, SIE, EPL, POINT_MASS */
  double e1, e2;             /* SIE, EPL */
  double gamma;              /* EPL: 3D slope, 2 is isothermal */
  double Rs, alpha_Rs;       /* NFW */
  double gamma1, gamma2;     /* SHEAR */
  double kappa;              /* CONVERGENCE */
  double center_x, center_y; /* all but SHEAR/CONVERGENCE; for those, the expansion point */
  double redshift;           /* multi-plane only */
  double line_density;       /* LINE_MASS: convergence integrated across the rod, arcsec */
  double length, angle;      /* LINE_MASS: full length (arcsec), direction (radians from +x) */
} lenssim_mass;

typedef enum {
  LENSSIM_LIGHT_SERSIC, LENSSIM_LIGHT_SERSIC_ELLIPSE, LENSSIM_LIGHT_GAUSSIAN,
  LENSSIM_LIGHT_GAUSSIAN_ELLIPSE,
  LENSSIM_LIGHT_KIND_COUNT
} lenssim_light_kind;

typedef struct {
  lenssim_light_kind kind;
  double amp;                /* SERSIC*: surface brightness at R_sersic; GAUSSIAN*: total flux */
  double R_sersic, n_sersic; /* SERSIC* */
  double sigma;              /* GAUSSIAN* */
  double e1, e2;             /* *_ELLIPSE */
  double center_x, center_y;
  double redshift;           /* multi-plane sources: 0 means the scene's z_source */
} lenssim_light;

/* Names as in lenstronomy ("SIE", "SERSIC_ELLIPSE", ...). Return -1 / "?" when unknown. */
LENSSIM_API int lenssim_mass_kind_from_name(const char *name);
LENSSIM_API const char *lenssim_mass_kind_name(lenssim_mass_kind kind);
LENSSIM_API int lenssim_light_kind_from_name(const char *name);
LENSSIM_API const char *lenssim_light_kind_name(lenssim_light_kind kind);

/* Validate one entry; `what` names it in the message (e.g. "lens[1]"). */
LENSSIM_API lenssim_result lenssim_lens_check(const lenssim_mass *m, const char *what, lenssim_error *err);
LENSSIM_API lenssim_result lenssim_light_check(const lenssim_light *l, const char *what, lenssim_error *err);

/* Surface brightness of `count` light entries summed at n positions, added into `out`. */
LENSSIM_API void lenssim_light_surface_brightness(const lenssim_light *lights, size_t count, size_t n,
                                                  const double *x, const double *y, double *out);

/* ---------------------------------------------------------------------------------------------
 * Lens models and ray tracing
 * ------------------------------------------------------------------------------------------- */
typedef struct {
  const lenssim_mass *lenses;
  size_t num_lenses;
  int multi_plane;              /* 0: one plane, theta_E etc. as given; 1: lenses at their redshifts */
  lenssim_cosmology cosmology;  /* multi-plane only */
  double z_source;              /* multi-plane: the default source redshift */
  double z_source_convention;   /* multi-plane: redshift the lens strengths refer to; 0 = z_source */
} lenssim_lens_model;

LENSSIM_API lenssim_result lenssim_lens_model_check(const lenssim_lens_model *model, lenssim_error *err);

/* Source-plane positions beta of n image-plane positions, for a source at z_source (multi-plane;
 * 0 means model->z_source; ignored for a single plane). */
LENSSIM_API lenssim_result lenssim_ray_shoot(const lenssim_lens_model *model, double z_source, size_t n,
                                             const double *x, const double *y, double *beta_x, double *beta_y,
                                             lenssim_error *err);
/* Total deflection alpha = theta - beta for the model's source redshift. */
LENSSIM_API lenssim_result lenssim_deflection(const lenssim_lens_model *model, size_t n, const double *x,
                                              const double *y, double *alpha_x, double *alpha_y, lenssim_error *err);
/* Convergence at (x, y): the sum of the profiles' kappa (single plane; for a multi-plane model,
 * half the trace of the Jacobian's deviation from identity, by finite differences). */
LENSSIM_API double lenssim_convergence(const lenssim_lens_model *model, double x, double y);
/* Signed magnification 1/det(d beta/d theta) at (x, y), the Jacobian by central differences. */
LENSSIM_API double lenssim_magnification(const lenssim_lens_model *model, double x, double y);

/* ---------------------------------------------------------------------------------------------
 * PSF
 * ------------------------------------------------------------------------------------------- */
typedef enum { LENSSIM_PSF_NONE, LENSSIM_PSF_GAUSSIAN, LENSSIM_PSF_MOFFAT, LENSSIM_PSF_PIXEL } lenssim_psf_kind;

typedef struct {
  lenssim_psf_kind kind;
  double fwhm;            /* arcsec (GAUSSIAN, MOFFAT) */
  double moffat_beta;     /* MOFFAT; 0 means 3.5 */
  const double *kernel;   /* PIXEL: kernel_size x kernel_size, row-major, odd side */
  int kernel_size;
} lenssim_psf;

/* Convolves an n x n image in place. `scratch` holds at least
 * lenssim_psf_scratch_doubles(psf, n, pixel_scale) doubles. */
LENSSIM_API size_t lenssim_psf_scratch_doubles(const lenssim_psf *psf, int n, double pixel_scale);
LENSSIM_API lenssim_result lenssim_psf_convolve(const lenssim_psf *psf, int n, double pixel_scale, double *image,
                                                double *scratch, lenssim_error *err);

/* ---------------------------------------------------------------------------------------------
 * Scenes and rendering
 * ------------------------------------------------------------------------------------------- */
typedef struct {
  int num_pix;          /* image side */
  double pixel_scale;   /* arcsec per pixel */
  int supersampling;    /* 0 means 1 */
} lenssim_grid;

typedef struct {
  lenssim_grid grid;
  lenssim_lens_model lens;
  const lenssim_light *lens_light;
  size_t num_lens_light;
  const lenssim_light *source_light;
  size_t num_source_light;
  lenssim_psf psf;
  int double_precision; /* 0: samples in float32 (fast; ~1e-7 relative); 1: in float64 */
} lenssim_scene;

LENSSIM_API lenssim_result lenssim_scene_check(const lenssim_scene *scene, lenssim_error *err);
/* Bytes of workspace lenssim_render needs for this scene (0 if the scene is too large). */
LENSSIM_API size_t lenssim_render_workspace_bytes(const lenssim_scene *scene);
/* Renders the noise-free image into image[num_pix * num_pix] (row-major, see "Grid").
 * workspace may be NULL, in which case it is allocated with LENSSIM_MALLOC and freed. */
LENSSIM_API lenssim_result lenssim_render(const lenssim_scene *scene, double *image, void *workspace,
                                          size_t workspace_bytes, lenssim_error *err);

/* ---------------------------------------------------------------------------------------------
 * Scenes from JSON text (format in the manual's "Scenes from JSON")
 * ------------------------------------------------------------------------------------------- */
typedef struct {
  lenssim_scene scene;  /* ready for lenssim_render; points into this struct, so do not copy it */
  lenssim_mass lenses[LENSSIM_MAX_PROFILES];
  lenssim_light lens_light[LENSSIM_MAX_PROFILES];
  lenssim_light source_light[LENSSIM_MAX_PROFILES]; /* CLUMPY entries expanded */
  double *psf_kernel;   /* a PIXEL PSF's kernel (LENSSIM_MALLOC), else NULL */
  int has_psf;          /* the text has a "psf" entry (without one a caller may apply a band's PSF) */
  char kind[64];        /* the informative "kind" string, "" if none */
} lenssim_json_scene;

/* Reads a scene from len bytes of JSON text (no terminating NUL needed) into *out (about 20 KB:
 * heap or static storage suits small stacks) and checks it as lenssim_scene_check does. On
 * failure err names the entry ("lens[1] 'SIE': missing keyword 'theta_E'") or the line and column
 * of a syntax error, and *out holds nothing to free. */
LENSSIM_API lenssim_result lenssim_scene_from_json(const char *text, size_t len, lenssim_json_scene *out,
                                                   lenssim_error *err);
/* Frees the PIXEL kernel; safe on a zeroed or failed scene and when called twice. */
LENSSIM_API void lenssim_json_scene_free(lenssim_json_scene *s);

/* ---------------------------------------------------------------------------------------------
 * Random numbers and noise
 * ------------------------------------------------------------------------------------------- */
typedef struct { uint64_t s[4]; } lenssim_rng;

LENSSIM_API void lenssim_rng_seed(lenssim_rng *rng, uint64_t seed);
LENSSIM_API uint64_t lenssim_rng_next(lenssim_rng *rng);
LENSSIM_API double lenssim_rng_uniform(lenssim_rng *rng);   /* [0, 1) with 53 random bits */
LENSSIM_API double lenssim_rng_normal(lenssim_rng *rng);    /* mean 0, variance 1 */
/* mean <= 0 gives 0; exact (PTRS) up to 2^48, a rounded normal deviate beyond */
LENSSIM_API double lenssim_rng_poisson(lenssim_rng *rng, double mean);

typedef struct {
  const char *name;
  double pixel_scale;      /* arcsec */
  double zero_point;       /* magnitude of 1 e-/s */
  double exposure_time;    /* seconds per exposure */
  int num_exposures;
  double sky_brightness;   /* mag/arcsec^2 */
  double read_noise;       /* e- per exposure */
  double ccd_gain;         /* e-/ADU */
  lenssim_psf_kind psf_kind;
  double psf_fwhm;         /* arcsec */
  double moffat_beta;
} lenssim_band;

LENSSIM_API size_t lenssim_band_count(void);
LENSSIM_API const lenssim_band *lenssim_band_at(size_t i);
/* By name, case-insensitive ("VIS", "NISP_Y", "HSC_g", "HST_F160W", ...); NULL if unknown. */
LENSSIM_API const lenssim_band *lenssim_band_find(const char *name);

typedef struct {
  double exposure_time;    /* total seconds; 0 means no Poisson noise */
  double sky_rate;         /* sky counts/s per pixel */
  double read_noise;       /* e- per exposure */
  int num_exposures;       /* 0 means 1 */
  double ccd_gain;         /* e-/ADU; 0 means no quantisation */
} lenssim_noise;

/* The band's noise for its own pixels (sky_rate per band pixel). */
LENSSIM_API lenssim_noise lenssim_noise_from_band(const lenssim_band *band);
/* Adds noise in place to `count` pixels in counts/s (see "Noise"); with a NULL noise, image or
 * random state it does nothing. */
LENSSIM_API void lenssim_add_noise(const lenssim_noise *noise, double *image, size_t count, lenssim_rng *rng);
/* Prepares a scene to be seen as `band` sees it: lenssim_render(scene), then lenssim_add_noise
 * with *noise. *noise (NULL: not wanted) becomes the band's noise with its sky per pixel scaled
 * by the pixel area, scene pixel_scale^2 / band pixel_scale^2, since the scene's pixels need not
 * be the band's. Unless keep_psf is nonzero the scene gets the band's PSF: pass a JSON scene's
 * has_psf (a scene without a "psf" entry is seen through the band's), or for a scene built in C
 * scene->psf.kind != LENSSIM_PSF_NONE. The scene's grid is not changed. LENSSIM_ERR_ARG for a
 * NULL band or scene, LENSSIM_ERR_RANGE for a pixel scale that is not positive. */
LENSSIM_API lenssim_result lenssim_band_observe(const lenssim_band *band, lenssim_scene *scene, int keep_psf,
                                                lenssim_noise *noise, lenssim_error *err);
/* What `lens render` does with one scene: JSON text (lenssim_scene_from_json) rendered
 * noise-free, or, with a band, seen through it (lenssim_band_observe) with its noise drawn from a
 * lenssim_rng seeded with `seed`; in double precision when use_double is nonzero. *side gets the
 * scene's num_pix. With image NULL the scene is only read and checked (to size the image); else
 * image[side * side] gets the pixels as float, row-major, and cap (floats) must hold them
 * (LENSSIM_ERR_RANGE, nothing written, when it does not). One allocation of side * side doubles,
 * freed before returning. */
LENSSIM_API lenssim_result lenssim_render_json(const char *text, size_t len, const lenssim_band *band, uint64_t seed,
                                               int use_double, float *image, size_t cap, size_t *side, lenssim_error *err);
/* counts/s of a source of AB-like magnitude `mag` for zero point `zp`. */
LENSSIM_API double lenssim_magnitude_to_counts(double mag, double zp);
/* Sersic amp (surface brightness at R_sersic) whose total flux is `counts` (circularised R). */
LENSSIM_API double lenssim_sersic_amp_from_counts(double counts, double R_sersic, double n_sersic);
LENSSIM_API double lenssim_sersic_amp_from_magnitude(double mag, double zp, double R_sersic, double n_sersic);

/* ---------------------------------------------------------------------------------------------
 * Clumpy star-forming sources: a Sersic disc plus Gaussian clumps
 * ------------------------------------------------------------------------------------------- */
typedef struct {
  double amp;               /* the disc's surface brightness at R_sersic, before clumps take their share */
  double R_sersic, n_sersic, e1, e2, center_x, center_y;
  int num_clumps;           /* 0 means 5 */
  double clump_fraction;    /* share of the total flux in clumps, 0..1; 0 means 0.3 */
  double clump_sigma;       /* arcsec; 0 means 0.15 R_sersic */
  double redshift;
} lenssim_clumpy;

/* Writes 1 + num_clumps entries into out (at most max_out), returns how many were written
 * (0 if max_out is too small). The clump positions and fluxes come from rng. */
LENSSIM_API size_t lenssim_clumpy_source(const lenssim_clumpy *params, lenssim_rng *rng, lenssim_light *out,
                                         size_t max_out);


/* ---------------------------------------------------------------------------------------------
 * Lens populations and labelled datasets (see the manual's "Populations and datasets")
 * ------------------------------------------------------------------------------------------- */
/* Einstein radius (arcsec) of a singular isothermal sphere of velocity dispersion sigma_v
 * (km/s) at z_lens for a source at z_source: 4 pi (sigma_v/c)^2 D_ls/D_s; 0 if z_source <= z_lens. */
LENSSIM_API double lenssim_einstein_radius_sis(const lenssim_cosmology *c, double sigma_v, double z_lens, double z_source);
/* Velocity-dispersion function of Choi, Park & Vogeley 2007 (ApJ 658, 884): the comoving number
 * density of early-type galaxies per unit sigma (h^3 Mpc^-3 per km/s),
 * phi(sigma) = phi* (sigma/sigma*)^alpha exp(-(sigma/sigma*)^beta) beta / Gamma(alpha/beta) / sigma,
 * phi* = 8e-3 h^3 Mpc^-3, sigma* = 161 km/s, alpha = 2.32, beta = 2.67. */
LENSSIM_API double lenssim_velocity_dispersion_function(double sigma_v);

typedef enum {
  LENSSIM_PRESET_EUCLID_LENSFINDING, LENSSIM_PRESET_EUCLID_COMPOUND, LENSSIM_PRESET_DEEPLENSE_SUBSTRUCTURE,
  LENSSIM_PRESET_ENSAI_MODELLING,
  LENSSIM_PRESET_COUNT
} lenssim_preset;

/* Image layouts: bands, size and pixel scale of the output (see the manual). */
typedef enum {
  LENSSIM_LAYOUT_DEFAULT,  /* the preset's own */
  LENSSIM_LAYOUT_OU66,     /* VIS, NISP Y, J, H; 66 x 66 at 0.3"; VIS rendered at 0.1" and binned 3x3 */
  LENSSIM_LAYOUT_OU200,    /* VIS, NISP Y, J, H; 200 x 200 at 0.1"; NISP rendered at 0.3" and resampled */
  LENSSIM_LAYOUT_HSC,      /* HSC g, r, i; 64 x 64 at 0.168" */
  LENSSIM_LAYOUT_HST192,   /* HST F160W-like; 192 x 192 at 0.04" */
  LENSSIM_LAYOUT_HST150,   /* HST F160W-like; 150 x 150 at 0.05" */
  LENSSIM_LAYOUT_CHALLENGE1_VIS, /* the space-based set of lens-finding challenge 1 (Metcalf et al.
                                  * 2019): CHALLENGE1_VIS; 101 x 101 at 0.1" */
  LENSSIM_LAYOUT_COUNT
} lenssim_layout;

/* What an object is. Classes (the `label`): 0 non-lens / 1 lens, or for the substructure preset
 * 0 no substructure, 1 subhalos, 2 vortex, a third each: object i is class (i + k) mod 3, k
 * (0..2) fixed by the seed, so any run of consecutive objects is balanced to within one. */
typedef enum {
  LENSSIM_KIND_EMPTY, LENSSIM_KIND_STAR, LENSSIM_KIND_ELLIPTICAL, LENSSIM_KIND_DISC, LENSSIM_KIND_SPIRAL,
  LENSSIM_KIND_EDGE_ON_DISC, LENSSIM_KIND_PAIR, LENSSIM_KIND_RING_GALAXY, LENSSIM_KIND_MERGER,
  LENSSIM_KIND_GALAXY_GALAXY, LENSSIM_KIND_COMPOUND_ARC, LENSSIM_KIND_DOUBLE_RING,
  LENSSIM_KIND_NO_SUBSTRUCTURE, LENSSIM_KIND_SUBHALOS, LENSSIM_KIND_VORTEX,
  LENSSIM_KIND_COUNT
} lenssim_kind;

/* Zero means the preset's default everywhere. */
typedef struct {
  lenssim_preset preset;
  lenssim_layout layout;
  double lens_fraction;      /* share of lenses among objects (Euclid presets; 0 means 0.5; 1/101 is
                                the 1:100 imbalance of a survey); refused by presets whose objects
                                are all lenses (deeplense-substructure, ensai-modelling) */
  int noise_free;            /* 1: no noise (the labels' arc_snr still assumes the band's noise) */
  int supersampling;         /* sub-pixel samples per side at the render's pixel scale */
  double theta_E_min, theta_E_max;  /* arcsec: selection window of the lens's Einstein radius */
  double snr_min;            /* minimum arc S/N in the detection band (0 means 20) */
  double magnification_min;  /* minimum total source magnification (0 means 3) */
  double clumpy_fraction;    /* share of clumpy star-forming sources (0 means 0.5; negative: none) */
  double substructure_scale; /* multiplies subhalo masses and the vortex density (0 means 1;
                                negative: no substructure mass at all) */
  double neighbour_density;  /* Euclid presets: line-of-sight galaxies per square arcminute brighter
                                than VIS 24.5 (0 means 30; negative: none) */
  double psf_scale;          /* multiplies every band's PSF FWHM (0 means 1): another instrument or
                                worse seeing, for a shifted sky (docs/deeplense.md) */
  double exposure_scale;     /* multiplies every band's exposure time (0 means 1; at 0.25 the noise
                                relative to the light grows 2 times where the sky dominates, 4 times
                                where read noise does) */
  lenssim_cosmology cosmology;
} lenssim_dataset_config;

/* Every parameter of one object. Unused fields are 0 (redshifts, magnitudes) or -1 (n_images2). */
typedef struct {
  int label;                 /* class index */
  lenssim_kind kind;
  double theta_E;            /* main deflector's Einstein radius (arcsec) for z_source */
  double theta_E2;           /* compound_arc: the second deflector's, for z_source2;
                                double_ring: the main deflector's for z_source2 */
  double e1, e2, center_x, center_y; /* main deflector's mass (and light) */
  double gamma1, gamma2;     /* external shear */
  double sigma_v;            /* main deflector's velocity dispersion (km/s) */
  double z_lens, z_lens2, z_source, z_source2;
  double source_x, source_y; /* source centre (first source plane) */
  double source_R, source_n; /* its half-light radius (arcsec) and Sersic index */
  int source_clumpy;
  double magnification, magnification2; /* total magnification of each source (detection band) */
  int n_images, n_images2;   /* images of each source's centre */
  double arc_snr;            /* S/N of all lensed light in the detection band */
  double mag_source, mag_source2, mag_lens; /* unlensed magnitudes in the detection band */
  int n_subhalos;
  double substructure_mass;  /* subhalos or vortex: mass as a fraction of the mass inside theta_E */
  double vortex_length, vortex_angle, vortex_density;
  int attempts;              /* draws until the selection accepted the object */
  double arc_snr1, arc_snr2; /* S/N of each source plane's lensed light alone (the other plane's light
                                counts as noise, like the lens light); arc_snr2 is 0 with one plane */
  int n_neighbours;          /* line-of-sight galaxies added to the field (unrelated, unlensed) */
} lenssim_label;

#define LENSSIM_DATASET_PSF_MAX (31 * 31)
typedef struct {
  lenssim_dataset_config config;   /* resolved: no zero defaults left */
  uint64_t seed;
  int channels, num_pix;           /* output: channels x num_pix x num_pix floats */
  double pixel_scale;              /* output pixel scale, arcsec */
  int classes;
  int detection_channel;           /* the band the selection measures S/N in */
  /* per channel */
  const lenssim_band *band[4];
  int mode[4];                     /* 0 direct, 1 render finer and bin, 2 render coarser and resample */
  int factor[4];                   /* bin or resample factor */
  int render_pix[4];
  double render_scale[4];
  int render_ss[4];
  size_t workspace_bytes, render_bytes;
  /* per channel of a Moffat band: its PSF as a PIXEL kernel on the render grid (side psf_side,
   * integrated over the render pixel when the render takes one sample per pixel); 0: the band's
   * own PSF */
  int psf_side[4];
  double psf_kernel[4][LENSSIM_DATASET_PSF_MAX];
  /* tables: comoving distance and inverse CDFs of the population draws */
  double dc_table[601];            /* D_C(z) at z = 0, 0.01, ..., 6 */
  double zl_icdf[257], sigma_icdf[257], zs_icdf[257];
} lenssim_dataset;

LENSSIM_API const char *lenssim_preset_name(lenssim_preset p);
LENSSIM_API int lenssim_preset_from_name(const char *name);   /* -1 if unknown */
LENSSIM_API const char *lenssim_layout_name(lenssim_layout l);
LENSSIM_API int lenssim_layout_from_name(const char *name);   /* -1 if unknown */
LENSSIM_API const char *lenssim_kind_name(lenssim_kind k);
/* The names of the preset's classes (the label values 0, 1, ...) joined by commas, e.g.
 * "non-lens,lens": the "classes" a finder trained on the preset declares. "?" if unknown. */
LENSSIM_API const char *lenssim_preset_class_names(lenssim_preset p);

/* labels.csv, one row per object: `index`, then every field of lenssim_label in declaration
 * order (kind by name, integers as %d, the rest as %.6g with a '.' whatever the C locale).
 * docs/populations.md ("labels.csv columns") says what each column holds. No file I/O here: the
 * caller writes the text. Lines end in '\n'. LENSSIM_LABEL_CSV_MAX bytes always hold one. */
#define LENSSIM_LABEL_CSV_MAX 1024
/* The header line, "index,label,kind,theta_E,...\n"; never NULL. */
LENSSIM_API const char *lenssim_label_csv_header(void);
/* Writes the row of object `index` into buf (cap bytes, NUL-terminated) and returns its length
 * without the NUL; 0 with LENSSIM_ERR_ARG in err (and "" in buf if cap > 0) when cap is too
 * small or label or buf is NULL. */
LENSSIM_API size_t lenssim_label_csv_row(const lenssim_label *label, uint64_t index, char *buf, size_t cap,
                                         lenssim_error *err);

/* Resolves the configuration, checks it (message in err) and builds the tables. */
LENSSIM_API lenssim_result lenssim_dataset_init(lenssim_dataset *ds, const lenssim_dataset_config *config, uint64_t seed,
                                                lenssim_error *err);
/* Floats per image: channels * num_pix * num_pix. */
LENSSIM_API size_t lenssim_dataset_image_floats(const lenssim_dataset *ds);
/* Bytes of workspace one call of lenssim_dataset_sample needs (one per thread). */
LENSSIM_API size_t lenssim_dataset_workspace_bytes(const lenssim_dataset *ds);
/* Object `index`: image[channels][num_pix][num_pix] (counts/s per output pixel) and its label
 * (both required). The result depends only on (ds's configuration, seed, index): any order, any
 * thread. workspace may be NULL (then allocated and freed here). */
LENSSIM_API lenssim_result lenssim_dataset_sample(const lenssim_dataset *ds, uint64_t index, float *image,
                                                  lenssim_label *label, void *workspace, size_t workspace_bytes,
                                                  lenssim_error *err);
/* The same, with the kind forced (its class follows). For the substructure preset the three
 * kinds share the main lens, source and noise of object `index` and differ only by substructure. */
LENSSIM_API lenssim_result lenssim_dataset_sample_kind(const lenssim_dataset *ds, uint64_t index, lenssim_kind kind,
                                                       float *image, lenssim_label *label, void *workspace,
                                                       size_t workspace_bytes, lenssim_error *err);
/* Images of the source-plane point (beta_x, beta_y) (a source at z_source; multi-plane models)
 * found on a 100 x 100 grid of cells (two triangles each) over the square of half-width
 * half_width about (cx, cy): triangles whose ray-traced image contains the point are counted.
 * Images with |magnification| < 0.05 (the cores of singular profiles) are not counted, and two
 * images closer than a cell may count as one. scratch holds LENSSIM_COUNT_IMAGES_SCRATCH doubles. */
#define LENSSIM_COUNT_IMAGES_SCRATCH (4 * 101 * 101)
/* S/N of lensed light `signal` (counts/s per pixel) over `background` (lens light, may be NULL)
 * with the band's noise (Poisson of sky, lens and source; read noise), as LensPop (Collett 2015)
 * measures it: the best sum(S)/sqrt(sum sigma^2) over the pixels taken in decreasing order of
 * S/sigma (found to within 7 % in S/sigma by binning). 0 without exposure time. */
LENSSIM_API double lenssim_arc_snr(const lenssim_noise *noise, const double *signal, const double *background, size_t count);
LENSSIM_API int lenssim_count_images(const lenssim_lens_model *model, double z_source, double beta_x, double beta_y,
                                     double cx, double cy, double half_width, double *scratch);
/* The kind object `index` gets (cheap: no rendering). */
LENSSIM_API lenssim_kind lenssim_dataset_kind(const lenssim_dataset *ds, uint64_t index);

/* ---------------------------------------------------------------------------------------------
 * Simulated survey fields: many objects of a population in one large image
 *
 * A field is size x size output pixels of the population's layout (bands, pixel scale) holding
 * `lenses` lenses and `others` non-lenses of a Euclid preset. Each object is object `index` of
 * the population (lenssim_dataset_sample, seeded with the field's seed), rendered noise-free as
 * its num_pix x num_pix stamp and added into the field with the stamp's first pixel at
 * (stamp_x, stamp_y); the band's noise is then added once over the whole field (so a field's
 * noise is that of one exposure, not one per stamp). Noise per output pixel: the band's for
 * pixels of the output scale (sky per pixel scaled by the pixel area); a channel rendered finer
 * and binned k x k (OU-66 VIS) gets read noise k times the band's, what summing k^2 read-out
 * pixels gives, so its noise matches the population's cutouts; a channel rendered coarser and
 * resampled (OU-200 NISP) gets white noise at the output pixels, where its cutouts have the
 * resampled (correlated) noise.
 *
 * Positions are in field pixels, 0-based, pixel centres at integers: the pixel in row i, column j
 * of the field is at (x = j, y = i), and pixel (0, 0) covers [-0.5, 0.5] x [-0.5, 0.5]. An
 * object's position is its stamp centre plus its label's centre_x, centre_y over the pixel scale
 * (the main deflector of a lens, the main galaxy of a non-lens): x = stamp_x + (num_pix - 1) / 2
 * + center_x / pixel_scale, the same for y (the dataset's grid convention).
 *
 * Placement (lenssim_field_place, from the field's seed alone): stamps lie wholly inside the
 * field; lenses are drawn first, uniformly, each at least lens_spacing from every other lens
 * (stamp centres); then non-lenses, uniformly, each at least half a stamp from every lens (so
 * the nearest lens to a detection is never in doubt), with no limit between non-lenses. Objects
 * are listed lenses first, then non-lenses, each group in population order. LENSSIM_ERR_RANGE
 * when 10000 draws in a row find no room for an object (too many lenses for the field).
 *
 * Determinism: the field depends only on (configuration, seed). Stamps may be rendered in any
 * order on any thread (lenssim_field_render_object); lenssim_field_add sums them in double, and
 * adding them in the listed order (as lenssim_field_render does) gives the same image whatever
 * the thread count. */
#define LENSSIM_FIELD_MAX_OBJECTS 100000

/* Zero means default everywhere. */
typedef struct {
  lenssim_dataset_config population; /* preset (euclid-lensfinding or euclid-compound), layout and
                                        options of the objects; its noise_free applies to the field */
  int size;                  /* field side in output pixels; 0 means 600 */
  int lenses;                /* lenses placed; 0 means 8, negative none */
  int others;                /* non-lenses placed; 0 means 100, negative none */
  double lens_spacing;       /* least distance between lens centres, output pixels; 0 means num_pix */
} lenssim_field_config;

/* One placed object. */
typedef struct {
  uint64_t index;            /* the object's number in the population */
  int label;                 /* its class (1: lens), known before rendering */
  int stamp_x, stamp_y;      /* field column and row of the stamp's first pixel */
  double x, y;               /* field position (see above); the stamp centre until rendered */
} lenssim_field_object;

typedef struct {
  lenssim_field_config config; /* resolved */
  lenssim_dataset population;  /* noise-free: stamps are rendered without noise */
  uint64_t seed;
  int channels, size, stamp;   /* bands; field side; stamp side (the layout's num_pix) */
  double pixel_scale;          /* arcsec per output pixel */
  size_t object_count;         /* lenses + others */
} lenssim_field;

/* Resolves and checks the configuration (message in err) and builds the population's tables.
 * LENSSIM_ERR_ARG for a preset other than the Euclid lens-finding ones, LENSSIM_ERR_RANGE for a
 * field smaller than a stamp, larger than LENSSIM_MAX_PIXELS or with more than
 * LENSSIM_FIELD_MAX_OBJECTS objects, and for a population lens_fraction of (nearly) 0 or 1 that
 * has no objects of a class the field places. */
LENSSIM_API lenssim_result lenssim_field_init(lenssim_field *f, const lenssim_field_config *config, uint64_t seed,
                                              lenssim_error *err);
/* Floats of the field image: channels * size * size. */
LENSSIM_API size_t lenssim_field_image_floats(const lenssim_field *f);
/* Chooses the objects and their places: objects[f->object_count]. Cheap (nothing rendered). */
LENSSIM_API lenssim_result lenssim_field_place(const lenssim_field *f, lenssim_field_object *objects, lenssim_error *err);
/* Renders object *obj noise-free into stamp[channels][stamp][stamp] (lenssim_dataset_image_floats
 * of f->population) with its label, and sets obj->x, obj->y from the label. workspace: as
 * lenssim_dataset_sample's (lenssim_dataset_workspace_bytes(&f->population); NULL allocates). */
LENSSIM_API lenssim_result lenssim_field_render_object(const lenssim_field *f, lenssim_field_object *obj, float *stamp,
                                                       lenssim_label *label, void *workspace, size_t workspace_bytes,
                                                       lenssim_error *err);
/* Adds a rendered stamp into the sum sum[channels][size][size] (doubles, zeroed by the caller). */
LENSSIM_API void lenssim_field_add(const lenssim_field *f, const lenssim_field_object *obj, const float *stamp, double *sum);
/* The field from the sum of its stamps: the noise (unless the population is noise_free), then
 * image[channels][size][size] in counts/s per pixel. sum is overwritten. */
LENSSIM_API void lenssim_field_finish(const lenssim_field *f, double *sum, float *image);
/* All of it, on the calling thread: places, renders and adds every object in order, finishes.
 * objects[f->object_count] and labels[f->object_count] (labels may be NULL) receive the truth.
 * Allocates the sum and one workspace (LENSSIM_MALLOC). */
LENSSIM_API lenssim_result lenssim_field_render(const lenssim_field *f, float *image, lenssim_field_object *objects,
                                                lenssim_label *labels, lenssim_error *err);

/* ---------------------------------------------------------------------------------------------
 * Training windows cut from a field: what a finder meets when it scans the field with a sliding
 * window (`lens find`: 66-pixel windows every 16 pixels for OU-66), as a labelled set that
 * `lens train` reads. A finder trained on centred cutouts scores a lens 8 pixels off-centre at
 * 0.00-0.15 (docs/find.md); these windows show it off-centre lenses and the galaxies that sit in
 * a scan's windows.
 *
 * A window is f->stamp x f->stamp output pixels of every band, cut on whole pixels from the
 * rendered field and lying wholly inside it; for its first pixel (x, y) its centre is at
 * (x + (stamp - 1) / 2, y + (stamp - 1) / 2) in the field's pixel convention above.
 *   Positives (lens_fraction of the windows): the field's lenses in turn (the k-th positive of the
 *     set takes the k-th lens, modulo their number; a lens with no window as below is passed
 *     over). The first pixel is drawn uniformly, in x and in y, among the whole-pixel positions
 *     that put the lens within max_offset R of the window's centre (|dx| <= R, |dy| <= R) and keep
 *     the window inside the field; with R under half a pixel, the window nearest to centred.
 *   Negatives: no lens of the field lies within clear D of the window's centre (Chebyshev: a lens
 *     with |dx| <= D and |dy| <= D forbids the window); a window that fails is drawn again, up to
 *     10000 times. centred_fraction of them are centred within R, as positives are on lenses, on a
 *     non-lens of the field drawn uniformly (the hard negatives of a scan: galaxies near a window's
 *     centre); the others lie uniformly over the field.
 * Windows are numbered: a call cuts windows first, ..., first + count - 1 of a set, so that a set
 * cut from many fields (a call per field, each starting where the last ended, with one seed) is
 * numbered as one. Which windows are positives, and which negatives are centred, follow the shares
 * exactly in any run of numbers, across calls too: window n is a positive when floor(n f + u0)
 * steps up between n and n + 1 (u0 from the seed), as lenssim_dataset_kind picks lenses.
 *
 * Labels: a window's row is that of the object it was cut around, with the object's position in
 * the window's frame, in arcsec (x along columns, y along rows, the dataset's grid convention):
 *   object x = window x + (stamp - 1) / 2 + center_x / pixel_scale, and the same for y;
 * source_x and source_y (when the object has a source, source_R > 0) move with it. So a positive's
 * center_x, center_y say where its lens lies in the window. A centred negative carries its
 * non-lens's row; a uniform negative the row of the non-lens nearest its centre among those whose
 * position lies in the window, else the row of empty sky (kind "empty", zeros, n_images2 = -1).
 * A negative's label is 0.
 *
 * Determinism: window n depends only on (the field and its truth, the configuration, seed, n): its
 * draws come from a random stream of its own, seeded from (seed, n), so fewer windows are the
 * first ones of more. Nothing is allocated. */

/* Zero means default everywhere; a negative value means 0 (none). */
typedef struct {
  double max_offset;       /* R, output pixels: largest offset, in x and in y, of a positive's lens
                              (and a centred negative's non-lens) from the window's centre;
                              0 means 8, half the stride `lens find` scans OU-66 fields with */
  double lens_fraction;    /* share of windows that are positives; 0 means 0.5; 1: positives only */
  double clear;            /* D, output pixels: no lens within D (Chebyshev) of a negative's
                              centre; 0 means 2 R; at least R */
  double centred_fraction; /* share of the negatives centred on a non-lens; 0 means 0.5 */
} lenssim_window_config;

/* Where one window was cut. */
typedef struct {
  int x, y;                  /* field column and row of the window's first pixel */
  int object;                /* the objects[] entry whose row labels the window; -1: none (zeros) */
  int label;                 /* 1 positive, 0 negative */
} lenssim_field_window;

/* The configuration with its defaults filled in, as literal values (negatives become 0; for
 * showing, not for passing back), checked against the field: LENSSIM_ERR_RANGE for a share
 * outside 0..1, R above (stamp - 1) / 2 (the lens would leave the window), D below R (a negative
 * could hold a lens as near as a positive's), positives in a field without lenses, or centred
 * negatives in a field without non-lenses. */
LENSSIM_API lenssim_result lenssim_field_windows_resolve(const lenssim_field *f, const lenssim_window_config *config,
                                                         lenssim_window_config *resolved, lenssim_error *err);
/* Cuts windows first .. first + count - 1 from a rendered field (see above):
 * image[channels][size][size] as lenssim_field_render or lenssim_field_finish made it,
 * objects[f->object_count] and labels[f->object_count] its truth, positions set by rendering.
 * Fills windows[count][channels][stamp][stamp], window_labels[count] and placed[count], each NULL
 * when not wanted (image and labels may then be NULL too). LENSSIM_ERR_RANGE, naming the window,
 * when no lens has a window inside the field or 10000 draws find no negative clear of the lenses
 * (a smaller D, fewer lenses or a larger field). */
LENSSIM_API lenssim_result lenssim_field_windows(const lenssim_field *f, const float *image,
                                                 const lenssim_field_object *objects, const lenssim_label *labels,
                                                 const lenssim_window_config *config, uint64_t seed, uint64_t first,
                                                 size_t count, float *windows, lenssim_label *window_labels,
                                                 lenssim_field_window *placed, lenssim_error *err);

#ifdef __cplusplus
}
#endif
#endif /* LENSSIM_H */

/* =============================================================================================
 * Implementation
 * =========================================================================================== */
#if defined(LENSSIM_IMPLEMENTATION) && !defined(LENSSIM__IMPLEMENTED)
#define LENSSIM__IMPLEMENTED

/* GCC vectorises loops with unknown trip counts only from -O3 (at -O2 its "very cheap" cost
 * model refuses them), and the render loops are ten times slower as scalar code. So in optimised
 * builds (not -O0 or -Os), unless LENSSIM_NO_OPTIMIZE_PRAGMA is defined, the implementation asks
 * for -O3, and the user's options are restored at the end of the file. Clang vectorises at -O2
 * and needs nothing. */
#if defined(__GNUC__) && !defined(__clang__) && !defined(LENSSIM_NO_OPTIMIZE_PRAGMA) && \
    defined(__OPTIMIZE__) && !defined(__OPTIMIZE_SIZE__)
#define LENSSIM__PUSHED_OPTIONS
#pragma GCC push_options
#pragma GCC optimize("O3")
#endif

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdarg.h>
#include <math.h>
#include <locale.h>

#if defined(LENSSIM_MALLOC) && defined(LENSSIM_FREE)
#elif !defined(LENSSIM_MALLOC) && !defined(LENSSIM_FREE)
#define LENSSIM_MALLOC(sz) malloc(sz)
#define LENSSIM_FREE(p) free(p)
#else
#error "lenssim.h: define both LENSSIM_MALLOC and LENSSIM_FREE, or neither"
#endif

#define LENSSIM__PI 3.14159265358979323846
#define LENSSIM__C_KM_S 299792.458

LENSSIM_API const char *lenssim_result_string(lenssim_result r) {
  switch (r) {
#define LENSSIM__CASE(name, text) case name: return text;
    LENSSIM_RESULTS(LENSSIM__CASE)
#undef LENSSIM__CASE
    default: return "unknown result";
  }
}

/* An unsigned 64-bit number in decimal, without printf's %llu (newlib-nano, the C library of
   microcontroller toolchains, lacks it). buf: 21 bytes or more. */
static const char *lenssim__u64_text(uint64_t v, char *buf) {
  char t[24];
  int n = 0, i;
  do { t[n++] = (char)('0' + (int)(v % 10u)); v /= 10u; } while (v);
  for (i = 0; i < n; i++) buf[i] = t[n - 1 - i];
  buf[n] = 0;
  return buf;
}

static lenssim_result lenssim__fail(lenssim_error *err, lenssim_result r, const char *fmt, ...) {
  if (err) {
    va_list ap;
    err->result = r;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
  }
  return r;
}

/* ---- fast, accurate scalar math that compilers can vectorise --------------------------------
 * The render loops call exp, log and atan hundreds of thousands of times per image. libm's
 * versions are correct but opaque to the vectoriser; these are branch-free (selects only), so
 * the loops that call them become SIMD loops, and they stay within a few ulp of libm. */
#if defined(__GNUC__) || defined(__clang__)
#define LENSSIM__INLINE static inline __attribute__((always_inline))
#else
#define LENSSIM__INLINE static inline
#endif
LENSSIM__INLINE double lenssim__bits_to_double(uint64_t u) { double d; memcpy(&d, &u, sizeof d); return d; }
LENSSIM__INLINE uint64_t lenssim__double_to_bits(double d) { uint64_t u; memcpy(&u, &d, sizeof u); return u; }

/* Distinct arrays in the ray-tracing loops: saying so lets them vectorise without run-time
 * overlap checks. */
#if defined(__cplusplus)
#if defined(__GNUC__) || defined(__clang__) || defined(_MSC_VER)
#define LENSSIM__RESTRICT __restrict
#else
#define LENSSIM__RESTRICT
#endif
#else
#define LENSSIM__RESTRICT restrict
#endif

/* The polynomial chains in the vector loops are long and serial; unrolling the vector loop twice
 * lets two iterations overlap (a few per cent with GCC). */
#if defined(__GNUC__) && !defined(__clang__)
#define LENSSIM__UNROLL2 _Pragma("GCC unroll 2")
#else
#define LENSSIM__UNROLL2
#endif

/* The render and noise loops are vectorised by the compiler, so their speed follows the
 * instruction set it targets: built for baseline x86-64 (SSE2, no -march) they ran about ten
 * times slower than with -march=native. GCC 11+ on x86-64 Linux therefore compiles the hot
 * functions three times (target_clones: x86-64-v4 = AVX-512, x86-64-v3 = AVX2, baseline) and
 * the loader picks the clone the CPU runs (an ifunc, resolved once): about 1.25x the time of a
 * -march=native build, which also fuses multiply-adds (the clones do not in ISO C mode, so
 * every clone gives the same image). Clang 14's clones measured no faster, so Clang builds go without. Builds that
 * already target AVX2 (e.g. -march=native) need no clones. LENSSIM_NO_CLONES turns them off.
 * ThreadSanitizer builds go without too: the loader runs the ifunc resolvers before the TSan
 * runtime is set up, and the instrumented resolver crashes the program before main. */
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 11 && defined(__x86_64__) && defined(__gnu_linux__) && \
    !defined(__AVX2__) && !defined(LENSSIM_NO_CLONES) && !defined(__SANITIZE_THREAD__)
#define LENSSIM__CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define LENSSIM__CLONES
#endif

/* a*b + c in double and in float, fused where the target has FMA (faster and no less accurate) */
#if defined(__FMA__) || defined(__ARM_FEATURE_FMA)
#define LENSSIM__MADD(a, b, c) fma(a, b, c)
#define LENSSIM__MADDF(a, b, c) fmaf(a, b, c)
#else
#define LENSSIM__MADD(a, b, c) ((a) * (b) + (c))
#define LENSSIM__MADDF(a, b, c) ((a) * (b) + (c))
#endif

/* Short loops of known length inside the vector loops (polynomial coefficients, Newton steps)
 * are unrolled completely, so the vectoriser sees straight-line multiply-adds. */
#if defined(__clang__)
#define LENSSIM__UNROLL_FULL _Pragma("clang loop unroll(full)")
#elif defined(__GNUC__)
#define LENSSIM__UNROLL_FULL _Pragma("GCC unroll 32")
#else
#define LENSSIM__UNROLL_FULL
#endif

/* Horner's rule: c[0] x^(n-1) + c[1] x^(n-2) + ... + c[n-1], highest power first. Every
 * polynomial below is a coefficient table evaluated here: lenssim__horner in double,
 * lenssim__hornerf in float (one body, two precisions). */
#define LENSSIM__HORNER(name, T, madd)                              \
  LENSSIM__INLINE T name(const T *c, int n, T x) {                  \
    T p = c[0];                                                     \
    int i;                                                          \
    LENSSIM__UNROLL_FULL                                            \
    for (i = 1; i < n; i++) p = madd(p, x, c[i]);                   \
    return p;                                                       \
  }
LENSSIM__HORNER(lenssim__horner, double, LENSSIM__MADD)
LENSSIM__HORNER(lenssim__hornerf, float, LENSSIM__MADDF)

/* exp(x) for x in [-708, 708] (clamped): x = k ln2 + r, |r| <= ln2/2, exp(r) by a degree-13
 * Taylor polynomial (truncation error < 1e-17); 2^k is built in the exponent bits from the
 * low bits of x log2(e) + 1.5 2^52 (whose mantissa then holds k), so no float-to-int
 * conversion is needed and the loop vectorises even without AVX-512. */
LENSSIM__INLINE double lenssim__exp(double x) {
  const double ln2_hi = 6.93147180369123816490e-01, ln2_lo = 1.90821492927058770002e-10;
  const double shifter = 6755399441055744.0; /* 1.5 * 2^52 */
  static const double taylor[14] = {1.0 / 6227020800.0, 1.0 / 479001600.0, 1.0 / 39916800.0, 1.0 / 3628800.0,
                                    1.0 / 362880.0, 1.0 / 40320.0, 1.0 / 5040.0, 1.0 / 720.0, 1.0 / 120.0,
                                    1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0, 1.0};
  double t, kd, r, p;
  x = x < -708.0 ? -708.0 : x;
  x = x > 708.0 ? 708.0 : x;
  t = LENSSIM__MADD(x, 1.4426950408889634, shifter);
  kd = t - shifter;
  r = LENSSIM__MADD(-kd, ln2_hi, x);
  r = LENSSIM__MADD(-kd, ln2_lo, r);
  p = lenssim__horner(taylor, 14, r);
  return p * lenssim__bits_to_double((lenssim__double_to_bits(t) + 1023u) << 52);
}

/* log(x) for finite x > 0 (tiny or non-positive x give a large negative value, never NaN):
 * x = m 2^e with m in [sqrt(1/2), sqrt(2)); log m = 2 atanh(s), s = (m-1)/(m+1), |s| < 0.1716,
 * by its odd series to s^23 (truncation < 1e-19). The exponent is turned into a double by
 * placing it in the mantissa of 2^52 (again no float-int conversion). */
LENSSIM__INLINE double lenssim__log(double x) {
  static const double atanh_series[12] = {1.0 / 23.0, 1.0 / 21.0, 1.0 / 19.0, 1.0 / 17.0, 1.0 / 15.0, 1.0 / 13.0,
                                          1.0 / 11.0, 1.0 / 9.0,  1.0 / 7.0,  1.0 / 5.0,  1.0 / 3.0,  1.0};
  uint64_t u, mbits;
  double m, e, s, s2, p, above, m_half;
  x = x < 1e-300 ? 1e-300 : x;
  u = lenssim__double_to_bits(x);
  e = lenssim__bits_to_double(0x4330000000000000ULL | (u >> 52)) - (4503599627370496.0 + 1023.0);
  mbits = (u & 0x000fffffffffffffULL) | 0x3ff0000000000000ULL; /* m in [1, 2) */
  m = lenssim__bits_to_double(mbits);
  /* move m into [sqrt(1/2), sqrt(2)) so that |s| stays small; arithmetic selects keep the
   * loop free of branches */
  above = m > 1.4142135623730951 ? 1.0 : 0.0;
  m_half = m * 0.5;
  m = above > 0 ? m_half : m;
  e += above;
  s = (m - 1.0) / (m + 1.0);
  s2 = s * s;
  p = lenssim__horner(atanh_series, 12, s2);
  return LENSSIM__MADD(e, 0.69314718055994530942, 2.0 * s * p);
}

/* atan(x): reduce to |x| <= 1 with atan(x) = pi/2 - atan(1/x), then to |t| <= tan(pi/8) with
 * atan(u) = pi/4 + atan((u-1)/(u+1)); the odd Taylor series to t^39 is then below 1e-17.
 * Both sides of each reduction are computed and selected, so there are no branches. */
LENSSIM__INLINE double lenssim__atan(double x) {
  static const double atan_series[20] = {
      -1.0 / 39.0, 1.0 / 37.0, -1.0 / 35.0, 1.0 / 33.0, -1.0 / 31.0, 1.0 / 29.0, -1.0 / 27.0,
      1.0 / 25.0,  -1.0 / 23.0, 1.0 / 21.0, -1.0 / 19.0, 1.0 / 17.0, -1.0 / 15.0, 1.0 / 13.0,
      -1.0 / 11.0, 1.0 / 9.0,  -1.0 / 7.0, 1.0 / 5.0,  -1.0 / 3.0, 1.0};
  double ax = fabs(x), inv, u, t, tm, t2, p, r, r_mid, r_big;
  int big, mid;
  big = ax > 1.0;
  inv = 1.0 / (ax > 1e-300 ? ax : 1e-300);
  u = big ? inv : ax;
  mid = u > 0.41421356237309503;
  tm = (u - 1.0) / (u + 1.0);
  t = mid ? tm : u;
  t2 = t * t;
  p = lenssim__horner(atan_series, 20, t2);
  r = t * p;
  r_mid = r + 0.78539816339744830962;
  r = mid ? r_mid : r;
  r_big = 1.57079632679489661923 - r;
  r = big ? r_big : r;
  return x < 0 ? -r : r;
}

/* sqrt(v) for v >= 0. libm's sqrt may set errno, and compilers keep that (-fmath-errno, the
 * default) as a scalar call per iteration, which stops vectorisation. Instead: 1/sqrt(v) from
 * an exponent-halving bit trick (relative error < 3.5%), four Newton steps (error squares each
 * time: below 1e-20), then sqrt = v / sqrt(v) with one correction step; within 2 ulp of sqrt. */
LENSSIM__INLINE double lenssim__sqrt(double v) {
  double y, r, half;
  v = v > 0.0 ? v : 0.0;
  half = 0.5 * v;
  y = lenssim__bits_to_double(0x5fe6eb50c7b537a9ULL - (lenssim__double_to_bits(v) >> 1));
  y = y * LENSSIM__MADD(-half * y, y, 1.5);
  y = y * LENSSIM__MADD(-half * y, y, 1.5);
  y = y * LENSSIM__MADD(-half * y, y, 1.5);
  y = y * LENSSIM__MADD(-half * y, y, 1.5);
  r = v * y;
  /* one Newton step on r itself: r += (v - r^2) / (2 r) = r + (v - r^2) y / 2 */
  return LENSSIM__MADD(LENSSIM__MADD(-r, r, v), 0.5 * y, r);
}

/* atanh(z) = log1p(w)/2 with w = 2z/(1-z), |z| < 1; log1p(w) = log(u) w/(u-1), u = 1+w
 * (Goldberg 1991) keeps full relative precision for tiny z (the SIE's near-round limit). */
LENSSIM__INLINE double lenssim__atanh(double z) {
  double w = 2.0 * z / (1.0 - z), u = 1.0 + w, um1 = u - 1.0;
  double l = lenssim__log(u) * w / (um1 != 0.0 ? um1 : 1.0);
  return 0.5 * (um1 != 0.0 ? l : w);
}

/* ---- cosmology ------------------------------------------------------------------------------ */
static void lenssim__cosmo_defaults(const lenssim_cosmology *c, double *H0, double *Om0) {
  *H0 = (c && c->H0 > 0) ? c->H0 : 70.0;
  *Om0 = (c && c->Om0 > 0) ? c->Om0 : 0.3;
}

static double lenssim__inv_E(double Om0, double z) {
  double a = 1.0 + z;
  return 1.0 / sqrt(Om0 * a * a * a + (1.0 - Om0));
}

/* int_z1^z2 dz/E(z) by composite 8-point Gauss-Legendre on panels no wider than 0.05 in z:
 * 1/E is analytic and slowly varying, so each panel is exact to ~1e-16. */
static double lenssim__integral_inv_E(double Om0, double z1, double z2) {
  static const double node[4] = {0.18343464249564980494, 0.52553240991632898582,
                                 0.79666647741362673959, 0.96028985649753623168};
  static const double weight[4] = {0.36268378337836198297, 0.31370664587788728734,
                                   0.22238103445337447054, 0.10122853629037625915};
  double sign = 1.0, total = 0.0, width;
  long panels, p;
  int k;
  if (z2 < z1) { double t = z1; z1 = z2; z2 = t; sign = -1.0; }
  if (z2 == z1) return 0.0;
  panels = (long)ceil((z2 - z1) / 0.05);
  if (panels < 1) panels = 1;
  if (panels > 100000) panels = 100000;
  width = (z2 - z1) / (double)panels;
  for (p = 0; p < panels; p++) {
    double mid = z1 + ((double)p + 0.5) * width, half = 0.5 * width, sum = 0.0;
    for (k = 0; k < 4; k++)
      sum += weight[k] * (lenssim__inv_E(Om0, mid - half * node[k]) + lenssim__inv_E(Om0, mid + half * node[k]));
    total += sum * half;
  }
  return sign * total;
}

LENSSIM_API double lenssim_comoving_distance(const lenssim_cosmology *c, double z1, double z2) {
  double H0, Om0;
  lenssim__cosmo_defaults(c, &H0, &Om0);
  return LENSSIM__C_KM_S / H0 * lenssim__integral_inv_E(Om0, z1, z2);
}

LENSSIM_API double lenssim_angular_diameter_distance(const lenssim_cosmology *c, double z1, double z2) {
  return lenssim_comoving_distance(c, z1, z2) / (1.0 + z2);
}

/* ---- keywords: each model's keywords with their ranges, written once -------------------------
 * One row per keyword (lenstronomy's name): the struct field it fills, whether a JSON scene must
 * give it, and the accepted range. The checks of C structs (lenssim_lens_check, lenssim_light_check,
 * lenssim_scene_check) and the JSON reader (lenssim_scene_from_json) both read these rows. */
enum {
  LENSSIM__REQUIRED = 1,      /* a JSON scene must give it */
  LENSSIM__INT = 2,           /* an int field: a whole number */
  LENSSIM__WHOLE = 4,         /* a double field holding a whole number */
  LENSSIM__LO_OPEN = 8,       /* lo itself is refused */
  LENSSIM__HI_OPEN = 16,      /* hi itself is refused */
  LENSSIM__ZERO_DEFAULT = 32, /* 0 in a struct means a default; JSON gives a value in range or none */
  LENSSIM__PAIR_E = 64,       /* with the row before, an ellipticity: sqrt(e1^2 + e2^2) < 1 */
  LENSSIM__KERNEL = 128,      /* JSON only: a PIXEL PSF's square array of rows */
  LENSSIM__LIST = 256         /* JSON only: an array of redshifts; offset says which list (0 lens, 1 source) */
};

typedef struct {
  const char *key;
  size_t offset;
  int flags;
  double lo, hi;
} lenssim__key;

typedef struct {
  const char *name; /* the model's type name, or NULL for a section such as "grid" */
  const lenssim__key *keys;
  size_t count;
} lenssim__model;

#define LENSSIM__ROW(T, key, field, flags, lo, hi) {key, offsetof(T, field), flags, lo, hi}
#define LENSSIM__POSITION(T, key, field) LENSSIM__ROW(T, key, field, 0, -1e4, 1e4)
#define LENSSIM__CENTRE(T) LENSSIM__POSITION(T, "center_x", center_x), LENSSIM__POSITION(T, "center_y", center_y)
#define LENSSIM__ORIGIN LENSSIM__POSITION(lenssim_mass, "ra_0", center_x), LENSSIM__POSITION(lenssim_mass, "dec_0", center_y)
#define LENSSIM__ELLIPTICITY(T) LENSSIM__ROW(T, "e1", e1, LENSSIM__REQUIRED, -1.0, 1.0), \
  LENSSIM__ROW(T, "e2", e2, LENSSIM__REQUIRED | LENSSIM__PAIR_E, -1.0, 1.0)
#define LENSSIM__THETA_E LENSSIM__ROW(lenssim_mass, "theta_E", theta_E, LENSSIM__REQUIRED, 0.0, 1e3)
#define LENSSIM__AMP(T) LENSSIM__ROW(T, "amp", amp, LENSSIM__REQUIRED, -1e30, 1e30)
#define LENSSIM__SERSIC(T) LENSSIM__ROW(T, "R_sersic", R_sersic, LENSSIM__REQUIRED | LENSSIM__LO_OPEN, 0.0, 1e4), \
  LENSSIM__ROW(T, "n_sersic", n_sersic, LENSSIM__REQUIRED | LENSSIM__LO_OPEN, 0.0, 20.0)
#define LENSSIM__SIGMA LENSSIM__ROW(lenssim_light, "sigma", sigma, LENSSIM__REQUIRED | LENSSIM__LO_OPEN, 0.0, 1e4)
#define LENSSIM__REDSHIFT(T, key, field, flags) \
  LENSSIM__ROW(T, key, field, (flags) | LENSSIM__LO_OPEN | LENSSIM__HI_OPEN, 0.0, 1100.0)
#define LENSSIM__MODEL(name, keys) {name, keys, sizeof keys / sizeof keys[0]}

static const lenssim__key lenssim__sis_keys[] = {LENSSIM__THETA_E, LENSSIM__CENTRE(lenssim_mass)};
static const lenssim__key lenssim__sie_keys[] = {LENSSIM__THETA_E, LENSSIM__ELLIPTICITY(lenssim_mass),
                                                 LENSSIM__CENTRE(lenssim_mass)};
static const lenssim__key lenssim__epl_keys[] = {
  LENSSIM__THETA_E, LENSSIM__ROW(lenssim_mass, "gamma", gamma, LENSSIM__REQUIRED | LENSSIM__LO_OPEN, 1.0, 2.9),
  LENSSIM__ELLIPTICITY(lenssim_mass), LENSSIM__CENTRE(lenssim_mass)};
static const lenssim__key lenssim__nfw_keys[] = {
  LENSSIM__ROW(lenssim_mass, "Rs", Rs, LENSSIM__REQUIRED | LENSSIM__LO_OPEN, 0.0, 1e4),
  LENSSIM__ROW(lenssim_mass, "alpha_Rs", alpha_Rs, LENSSIM__REQUIRED, 0.0, 1e3), LENSSIM__CENTRE(lenssim_mass)};
static const lenssim__key lenssim__shear_keys[] = {
  LENSSIM__ROW(lenssim_mass, "gamma1", gamma1, LENSSIM__REQUIRED, -1.0, 1.0),
  LENSSIM__ROW(lenssim_mass, "gamma2", gamma2, LENSSIM__REQUIRED, -1.0, 1.0), LENSSIM__ORIGIN};
static const lenssim__key lenssim__convergence_keys[] = {
  LENSSIM__ROW(lenssim_mass, "kappa", kappa, LENSSIM__REQUIRED, -10.0, 10.0), LENSSIM__ORIGIN};
static const lenssim__key lenssim__line_mass_keys[] = {
  LENSSIM__ROW(lenssim_mass, "line_density", line_density, LENSSIM__REQUIRED, 0.0, 1000.0),
  LENSSIM__ROW(lenssim_mass, "length", length, LENSSIM__REQUIRED | LENSSIM__LO_OPEN, 0.0, 1e3),
  LENSSIM__ROW(lenssim_mass, "angle", angle, 0, -1e3, 1e3), LENSSIM__CENTRE(lenssim_mass)};
static const lenssim__model lenssim__mass_models[LENSSIM_MASS_KIND_COUNT] = {
  LENSSIM__MODEL("SIS", lenssim__sis_keys), LENSSIM__MODEL("SIE", lenssim__sie_keys),
  LENSSIM__MODEL("EPL", lenssim__epl_keys), LENSSIM__MODEL("NFW", lenssim__nfw_keys),
  LENSSIM__MODEL("POINT_MASS", lenssim__sis_keys), LENSSIM__MODEL("SHEAR", lenssim__shear_keys),
  LENSSIM__MODEL("CONVERGENCE", lenssim__convergence_keys), LENSSIM__MODEL("LINE_MASS", lenssim__line_mass_keys)};

static const lenssim__key lenssim__sersic_keys[] = {LENSSIM__AMP(lenssim_light), LENSSIM__SERSIC(lenssim_light),
                                                    LENSSIM__CENTRE(lenssim_light)};
static const lenssim__key lenssim__sersic_ellipse_keys[] = {LENSSIM__AMP(lenssim_light), LENSSIM__SERSIC(lenssim_light),
                                                            LENSSIM__ELLIPTICITY(lenssim_light), LENSSIM__CENTRE(lenssim_light)};
static const lenssim__key lenssim__gaussian_keys[] = {LENSSIM__AMP(lenssim_light), LENSSIM__SIGMA, LENSSIM__CENTRE(lenssim_light)};
static const lenssim__key lenssim__gaussian_ellipse_keys[] = {LENSSIM__AMP(lenssim_light), LENSSIM__SIGMA,
                                                              LENSSIM__ELLIPTICITY(lenssim_light), LENSSIM__CENTRE(lenssim_light)};
static const lenssim__model lenssim__light_models[LENSSIM_LIGHT_KIND_COUNT] = {
  LENSSIM__MODEL("SERSIC", lenssim__sersic_keys), LENSSIM__MODEL("SERSIC_ELLIPSE", lenssim__sersic_ellipse_keys),
  LENSSIM__MODEL("GAUSSIAN", lenssim__gaussian_keys), LENSSIM__MODEL("GAUSSIAN_ELLIPSE", lenssim__gaussian_ellipse_keys)};
/* A light's redshift is no keyword (multi_plane's source_redshifts set it); 0 means z_source. */
static const lenssim__key lenssim__light_redshift = LENSSIM__REDSHIFT(lenssim_light, "redshift", redshift, LENSSIM__ZERO_DEFAULT);

static const lenssim__key lenssim__grid_keys[] = {
  LENSSIM__ROW(lenssim_grid, "num_pix", num_pix, LENSSIM__REQUIRED | LENSSIM__INT, 1.0, LENSSIM_MAX_PIXELS),
  LENSSIM__ROW(lenssim_grid, "pixel_scale", pixel_scale, LENSSIM__REQUIRED | LENSSIM__LO_OPEN | LENSSIM__HI_OPEN, 0.0, 1e4),
  LENSSIM__ROW(lenssim_grid, "supersampling", supersampling, LENSSIM__INT | LENSSIM__ZERO_DEFAULT, 1.0,
               LENSSIM_MAX_SUPERSAMPLING)};
static const lenssim__model lenssim__grid_model = LENSSIM__MODEL(NULL, lenssim__grid_keys);
static const lenssim__key lenssim__cosmology_keys[] = {
  LENSSIM__ROW(lenssim_cosmology, "H0", H0, LENSSIM__ZERO_DEFAULT | LENSSIM__LO_OPEN | LENSSIM__HI_OPEN, 0.0, 1000.0),
  LENSSIM__ROW(lenssim_cosmology, "Om0", Om0, LENSSIM__ZERO_DEFAULT | LENSSIM__LO_OPEN, 0.0, 1.0)};
static const lenssim__model lenssim__cosmology_model = LENSSIM__MODEL(NULL, lenssim__cosmology_keys);
static const lenssim__key lenssim__multi_plane_keys[] = {
  {"lens_redshifts", 0, LENSSIM__REQUIRED | LENSSIM__LIST, 0.0, 0.0},
  LENSSIM__REDSHIFT(lenssim_lens_model, "z_source", z_source, LENSSIM__REQUIRED),
  LENSSIM__REDSHIFT(lenssim_lens_model, "z_source_convention", z_source_convention, LENSSIM__ZERO_DEFAULT),
  {"source_redshifts", 1, LENSSIM__LIST, 0.0, 0.0}};
static const lenssim__model lenssim__multi_plane_model = LENSSIM__MODEL(NULL, lenssim__multi_plane_keys);

static const lenssim__key lenssim__psf_fwhm_keys[] = {
  LENSSIM__ROW(lenssim_psf, "fwhm", fwhm, LENSSIM__REQUIRED | LENSSIM__LO_OPEN | LENSSIM__HI_OPEN, 0.0, 1e3),
  LENSSIM__ROW(lenssim_psf, "beta", moffat_beta, LENSSIM__ZERO_DEFAULT | LENSSIM__LO_OPEN, 0.0, 100.0)};
static const lenssim__key lenssim__psf_pixel_keys[] = {{"kernel", 0, LENSSIM__REQUIRED | LENSSIM__KERNEL, 0.0, 0.0}};
static const lenssim__model lenssim__psf_models[] = {
  {"NONE", NULL, 0}, {"GAUSSIAN", lenssim__psf_fwhm_keys, 1}, LENSSIM__MODEL("MOFFAT", lenssim__psf_fwhm_keys),
  LENSSIM__MODEL("PIXEL", lenssim__psf_pixel_keys)};

/* ---- names ---------------------------------------------------------------------------------- */
static int lenssim__model_index(const lenssim__model *models, int count, const char *name) {
  int i;
  for (i = 0; name && i < count; i++)
    if (!strcmp(name, models[i].name)) return i;
  return -1;
}
/* names[i] for 0 <= i < count, else "?": the public *_name functions of the generator's enums */
static const char *lenssim__name_of(const char *const *names, int count, int i) { return i >= 0 && i < count ? names[i] : "?"; }
LENSSIM_API int lenssim_mass_kind_from_name(const char *name) {
  return lenssim__model_index(lenssim__mass_models, LENSSIM_MASS_KIND_COUNT, name);
}
LENSSIM_API const char *lenssim_mass_kind_name(lenssim_mass_kind kind) {
  return (int)kind >= 0 && kind < LENSSIM_MASS_KIND_COUNT ? lenssim__mass_models[kind].name : "?";
}
LENSSIM_API int lenssim_light_kind_from_name(const char *name) {
  return lenssim__model_index(lenssim__light_models, LENSSIM_LIGHT_KIND_COUNT, name);
}
LENSSIM_API const char *lenssim_light_kind_name(lenssim_light_kind kind) {
  return (int)kind >= 0 && kind < LENSSIM_LIGHT_KIND_COUNT ? lenssim__light_models[kind].name : "?";
}

/* ---- checks --------------------------------------------------------------------------------- */
static int lenssim__finite(double v) { return v == v && v - v == 0.0; }

/* "lens[1] 'SIE'" for a model entry, "grid" for a section: the start of every message. */
static const char *lenssim__where(char *buf, size_t cap, const char *what, const char *name) {
  if (!name) return what;
  snprintf(buf, cap, "%s '%s'", what, name);
  return buf;
}

static int lenssim__key_in_range(const lenssim__key *k, double v) {
  if (!lenssim__finite(v) || v < k->lo || v > k->hi) return 0;
  if (((k->flags & LENSSIM__LO_OPEN) && v == k->lo) || ((k->flags & LENSSIM__HI_OPEN) && v == k->hi)) return 0;
  return !(k->flags & (LENSSIM__INT | LENSSIM__WHOLE)) || v == floor(v);
}

/* The value v of keyword `key` (a row's key, or a list element such as "lens_redshifts[2]"). */
static lenssim_result lenssim__key_check(const lenssim__key *k, const char *key, double v, const char *what,
                                         const char *name, lenssim_error *err) {
  char buf[96];
  if (lenssim__key_in_range(k, v)) return LENSSIM_OK;
  what = lenssim__where(buf, sizeof buf, what, name);
  if (k->flags & (LENSSIM__INT | LENSSIM__WHOLE))
    return lenssim__fail(err, LENSSIM_ERR_RANGE, "%s: %s = %g is out of range (a whole number %g..%g)", what, key, v,
                         k->lo, k->hi);
  return lenssim__fail(err, LENSSIM_ERR_RANGE, "%s: %s = %g is out of range (must be %s %g and %s %g)", what, key, v,
                       k->flags & LENSSIM__LO_OPEN ? ">" : ">=", k->lo, k->flags & LENSSIM__HI_OPEN ? "<" : "<=", k->hi);
}

static double lenssim__key_get(const lenssim__key *k, const void *obj) {
  const char *field = (const char *)obj + k->offset;
  if (k->flags & LENSSIM__INT) {
    int i;
    memcpy(&i, field, sizeof i);
    return (double)i;
  } else {
    double d;
    memcpy(&d, field, sizeof d);
    return d;
  }
}

/* Every numeric keyword of a model in range (0 passes where it means a default), and the
 * ellipticity pairs below 1. */
static lenssim_result lenssim__model_check(const lenssim__model *m, const void *obj, const char *what, lenssim_error *err) {
  size_t i;
  for (i = 0; i < m->count; i++) {
    const lenssim__key *k = &m->keys[i];
    double v, e2;
    lenssim_result r;
    if (k->flags & (LENSSIM__KERNEL | LENSSIM__LIST)) continue;
    v = lenssim__key_get(k, obj);
    if ((k->flags & LENSSIM__ZERO_DEFAULT) && v == 0.0) continue;
    if ((r = lenssim__key_check(k, k->key, v, what, m->name, err)) != LENSSIM_OK) return r;
    if (!(k->flags & LENSSIM__PAIR_E)) continue;
    e2 = lenssim__key_get(k - 1, obj) * lenssim__key_get(k - 1, obj) + v * v;
    if (e2 >= 1.0) {
      char buf[96];
      return lenssim__fail(err, LENSSIM_ERR_RANGE, "%s: sqrt(%s^2 + %s^2) = %g must be below 1",
                           lenssim__where(buf, sizeof buf, what, m->name), k[-1].key, k->key, sqrt(e2));
    }
  }
  return LENSSIM_OK;
}

LENSSIM_API lenssim_result lenssim_lens_check(const lenssim_mass *m, const char *what, lenssim_error *err) {
  if (!what) what = "lens";
  if ((int)m->kind < 0 || m->kind >= LENSSIM_MASS_KIND_COUNT)
    return lenssim__fail(err, LENSSIM_ERR_UNKNOWN, "%s: unknown lens model kind %d", what, (int)m->kind);
  return lenssim__model_check(&lenssim__mass_models[m->kind], m, what, err);
}

LENSSIM_API lenssim_result lenssim_light_check(const lenssim_light *l, const char *what, lenssim_error *err) {
  lenssim_result r;
  if (!what) what = "light";
  if ((int)l->kind < 0 || l->kind >= LENSSIM_LIGHT_KIND_COUNT)
    return lenssim__fail(err, LENSSIM_ERR_UNKNOWN, "%s: unknown light model kind %d", what, (int)l->kind);
  if ((r = lenssim__model_check(&lenssim__light_models[l->kind], l, what, err)) != LENSSIM_OK) return r;
  if (l->redshift == 0.0) return LENSSIM_OK;
  return lenssim__key_check(&lenssim__light_redshift, "redshift", l->redshift, what, lenssim__light_models[l->kind].name, err);
}

/* ---- profiles, prepared once per render ---------------------------------------------------- */
/* lenstronomy's (e1, e2) -> (phi, q) with |e| capped at 0.9999. */
static void lenssim__phi_q(double e1, double e2, double *phi, double *q) {
  double c = sqrt(e1 * e1 + e2 * e2);
  if (c > 0.9999) c = 0.9999;
  *phi = 0.5 * atan2(e2, e1);
  *q = (1.0 - c) / (1.0 + c);
}

typedef struct {
  lenssim_mass_kind kind;
  double cx, cy, cos_phi, sin_phi;
  double a, b, c, d; /* kind-specific constants, see lenssim__mass_prepare */
  double scale;      /* multiplies the deflection (multi-plane distance ratio), 1 otherwise */
} lenssim__mass_prep;

static void lenssim__mass_prepare(const lenssim_mass *m, double scale, lenssim__mass_prep *p) {
  double phi = 0.0, q = 1.0;
  memset(p, 0, sizeof *p);
  p->kind = m->kind;
  p->cx = m->center_x;
  p->cy = m->center_y;
  p->scale = scale;
  p->cos_phi = 1.0;
  switch (m->kind) {
    case LENSSIM_MASS_SIS: p->a = m->theta_E; break;
    case LENSSIM_MASS_POINT_MASS: p->a = m->theta_E * m->theta_E; break;
    case LENSSIM_MASS_SIE: {
      double s, f;
      lenssim__phi_q(m->e1, m->e2, &phi, &q);
      if (q >= 1.0) q = 0.99999999;
      s = 1e-10 / sqrt(q);
      f = sqrt(1.0 - q * q);
      p->a = q;                                 /* axis ratio */
      p->b = m->theta_E * sqrt(q) / f;          /* b / sqrt(1-q^2) */
      p->c = f;                                 /* sqrt(1-q^2) */
      p->d = s;                                 /* core */
      break;
    }
    case LENSSIM_MASS_EPL:
      lenssim__phi_q(m->e1, m->e2, &phi, &q);
      p->a = q;
      p->b = m->theta_E * sqrt(q); /* b of Tessore & Metcalf */
      p->c = m->gamma - 1.0;       /* t */
      break;
    case LENSSIM_MASS_NFW: {
      double Rs = m->Rs < 1e-7 ? 1e-7 : m->Rs;
      /* rho0 such that the deflection at R = Rs is alpha_Rs: alpha(Rs) = 4 rho0 Rs^2 g(1),
       * g(1) = 1 + ln(1/2). The deflection is then 4 rho0 Rs g(x)/x^2 (dx, dy). */
      double rho0 = m->alpha_Rs / (4.0 * Rs * Rs * (1.0 + log(0.5)));
      p->a = Rs;
      p->b = 4.0 * rho0 * Rs;
      break;
    }
    case LENSSIM_MASS_SHEAR: p->a = m->gamma1; p->b = m->gamma2; break;
    case LENSSIM_MASS_CONVERGENCE: p->a = m->kappa; break;
    case LENSSIM_MASS_LINE_MASS:
      phi = m->angle;
      p->a = m->line_density;
      p->b = 0.5 * m->length;
      break;
    default: break;
  }
  p->cos_phi = cos(phi);
  p->sin_phi = sin(phi);
}

/* NFW's g(x) = ln(x/2) + arccosh(1/x)/sqrt(1-x^2) (x < 1), 1 + ln(1/2) (x = 1),
 * ln(x/2) + arccos(1/x)/sqrt(x^2-1) (x > 1); x floored at 1e-6 as lenstronomy does. */
static double lenssim__nfw_g(double x) {
  if (x < 1e-6) x = 1e-6;
  if (fabs(x - 1.0) < 1e-3) { /* both branches cancel 0/0 near x = 1: Taylor series of the ratio */
    double e = x - 1.0;
    return log(x / 2.0) + 1.0 + e * (-2.0 / 3.0 + e * (7.0 / 15.0 + e * (-12.0 / 35.0 + e * (0.26349206349206349 + e * -0.21067821067821068))));
  }
  if (x < 1.0) return log(x / 2.0) + acosh(1.0 / x) / sqrt(1.0 - x * x);
  if (x == 1.0) return 1.0 + log(0.5);
  return log(x / 2.0) + acos(1.0 / x) / sqrt(x * x - 1.0);
}

/* NFW's F(x), the projected density shape: kappa = 2 rho0 Rs F(x). */
static double lenssim__nfw_F(double x) {
  if (x < 1e-7) x = 1e-7;
  if (fabs(x - 1.0) < 1e-3) { /* (1 - ~1)/(x^2 - 1) loses all digits near x = 1: Taylor series */
    double e = x - 1.0;
    return 1.0 / 3.0 + e * (-0.4 + e * (13.0 / 35.0 + e * (-20.0 / 63.0 + e * (0.26406926406926407 + e * -0.21911421911421911))));
  }
  if (x < 1.0) return (1.0 - 2.0 / sqrt(1.0 - x * x) * atanh(sqrt((1.0 - x) / (1.0 + x)))) / (x * x - 1.0);
  if (x == 1.0) return 1.0 / 3.0;
  return (1.0 - 2.0 / sqrt(x * x - 1.0) * atan(sqrt((x - 1.0) / (1.0 + x)))) / (x * x - 1.0);
}

/* EPL deflection in the major-axis frame (Tessore & Metcalf 2015, eq. 22-23):
 * alpha = 2/(1+q) (b/R)^t Z 2F1(1, t/2; 2-t/2; -f Z/conj(Z)), Z = q x + i y, f = (1-q)/(1+q).
 * The series term ratio is (2k-2+t)/(2k+2-t) w with |w| = f < 1, summed until it no longer
 * changes the sum. */
static void lenssim__epl_major_axis(double x, double y, double b, double t, double q, double *ax, double *ay) {
  double zr = q * x, zi = y, R = sqrt(zr * zr + zi * zi), f = (1.0 - q) / (1.0 + q);
  double wr, wi, termr = 1.0, termi = 0.0, sumr = 1.0, sumi = 0.0, amp, rr;
  int k;
  if (R < 1e-9) R = 1e-9;
  /* w = -f e^{2 i varphi} = -f Z^2/|Z|^2 */
  wr = -f * (zr * zr - zi * zi) / (R * R);
  wi = -f * (2.0 * zr * zi) / (R * R);
  for (k = 1; k < 100000; k++) {
    double ratio = (2.0 * k - 2.0 + t) / (2.0 * k + 2.0 - t);
    double nr = ratio * (termr * wr - termi * wi), ni = ratio * (termr * wi + termi * wr);
    termr = nr; termi = ni;
    sumr += termr; sumi += termi;
    if (fabs(termr) + fabs(termi) < 1e-17 * (fabs(sumr) + fabs(sumi))) break;
  }
  amp = 2.0 / (1.0 + q) * pow(b / R, t);
  rr = zr * sumr - zi * sumi;
  *ax = amp * rr;
  *ay = amp * (zr * sumi + zi * sumr);
}

/* Adds scale * alpha(x, y) of one profile into ax, ay for n positions. */
static void lenssim__mass_deflect_add(const lenssim__mass_prep *p, size_t n, const double *x, const double *y,
                                      double *ax, double *ay) {
  size_t i;
  const double cx = p->cx, cy = p->cy, cs = p->cos_phi, sn = p->sin_phi, sc = p->scale;
  switch (p->kind) {
    case LENSSIM_MASS_SIS: {
      const double k = p->a * sc;
      for (i = 0; i < n; i++) {
        double dx = x[i] - cx, dy = y[i] - cy, r2 = dx * dx + dy * dy;
        double inv = k / lenssim__sqrt(r2 > 1e-30 ? r2 : 1e-30);
        ax[i] += dx * inv;
        ay[i] += dy * inv;
      }
      break;
    }
    case LENSSIM_MASS_POINT_MASS: {
      const double k = p->a * sc;
      for (i = 0; i < n; i++) {
        double dx = x[i] - cx, dy = y[i] - cy, r2 = dx * dx + dy * dy;
        double inv = k / (r2 > 1e-30 ? r2 : 1e-30);
        ax[i] += dx * inv;
        ay[i] += dy * inv;
      }
      break;
    }
    case LENSSIM_MASS_SIE: {
      const double q = p->a, k = p->b * sc, f = p->c, s = p->d, q2 = q * q, q2s2 = q2 * s * s, q2s = q2 * s;
      for (i = 0; i < n; i++) {
        double dx = x[i] - cx, dy = y[i] - cy;
        double xr = dx * cs + dy * sn, yr = -dx * sn + dy * cs;
        double psi = lenssim__sqrt(q2s2 + q2 * xr * xr + yr * yr);
        double axr = k * lenssim__atan(f * xr / (psi + s));
        double ayr = k * lenssim__atanh(f * yr / (psi + q2s));
        ax[i] += axr * cs - ayr * sn;
        ay[i] += axr * sn + ayr * cs;
      }
      break;
    }
    case LENSSIM_MASS_EPL:
      for (i = 0; i < n; i++) {
        double dx = x[i] - cx, dy = y[i] - cy, axr, ayr;
        lenssim__epl_major_axis(dx * cs + dy * sn, -dx * sn + dy * cs, p->b, p->c, p->a, &axr, &ayr);
        ax[i] += sc * (axr * cs - ayr * sn);
        ay[i] += sc * (axr * sn + ayr * cs);
      }
      break;
    case LENSSIM_MASS_NFW:
      for (i = 0; i < n; i++) {
        double dx = x[i] - cx, dy = y[i] - cy, R = sqrt(dx * dx + dy * dy), xs, k;
        if (R < 1e-8) R = 1e-8;
        xs = R / p->a;
        k = sc * p->b * lenssim__nfw_g(xs) / (xs * xs);
        ax[i] += k * dx;
        ay[i] += k * dy;
      }
      break;
    case LENSSIM_MASS_SHEAR: {
      const double g1 = p->a * sc, g2 = p->b * sc;
      for (i = 0; i < n; i++) {
        double dx = x[i] - cx, dy = y[i] - cy;
        ax[i] += g1 * dx + g2 * dy;
        ay[i] += g2 * dx - g1 * dy;
      }
      break;
    }
    case LENSSIM_MASS_CONVERGENCE: {
      const double k = p->a * sc;
      for (i = 0; i < n; i++) {
        ax[i] += k * (x[i] - cx);
        ay[i] += k * (y[i] - cy);
      }
      break;
    }
    case LENSSIM_MASS_LINE_MASS: {
      /* A thin uniform rod, u in [-h, h] along its axis, of convergence Lambda per unit length:
       * alpha = (Lambda/pi) int_{-h}^{h} (u - s, v)/((u - s)^2 + v^2) ds, which integrates to
       *   alpha_u = Lambda/(2 pi) ln(((u + h)^2 + v^2)/((u - h)^2 + v^2)),
       *   alpha_v = Lambda/pi (atan2(v, u - h) - atan2(v, u + h))   (the angle the rod subtends),
       * the 2D potential of a finite line segment (e.g. Schneider, Ehlers & Falco 1992, ch. 8, for
       * the kernel; the segment integral is elementary). alpha_v jumps by 2 Lambda across the rod. */
      const double k = p->a * sc / LENSSIM__PI, h = p->b;
      for (i = 0; i < n; i++) {
        double dx = x[i] - cx, dy = y[i] - cy;
        double u = dx * cs + dy * sn, v = -dx * sn + dy * cs;
        double num = (u + h) * (u + h) + v * v, den = (u - h) * (u - h) + v * v, au, av;
        if (den < 1e-300) den = 1e-300;
        if (num < 1e-300) num = 1e-300;
        au = 0.5 * k * log(num / den);
        av = k * (atan2(v, u - h) - atan2(v, u + h));
        ax[i] += au * cs - av * sn;
        ay[i] += au * sn + av * cs;
      }
      break;
    }
    default: break;
  }
}

/* Analytic convergence of one profile (no scale). */
static double lenssim__mass_kappa(const lenssim__mass_prep *p, double x, double y) {
  double dx = x - p->cx, dy = y - p->cy;
  double xr = dx * p->cos_phi + dy * p->sin_phi, yr = -dx * p->sin_phi + dy * p->cos_phi;
  double r = sqrt(dx * dx + dy * dy);
  switch (p->kind) {
    case LENSSIM_MASS_SIS: return p->a / (2.0 * (r > 1e-15 ? r : 1e-15));
    case LENSSIM_MASS_SIE: {
      double q = p->a, b = p->b * p->c, s = p->d;
      return b / (2.0 * sqrt(q * q * (s * s + xr * xr) + yr * yr));
    }
    case LENSSIM_MASS_EPL: {
      double q = p->a, R = sqrt(q * q * xr * xr + yr * yr);
      if (R < 1e-9) R = 1e-9;
      return (2.0 - p->c) / 2.0 * pow(p->b / R, p->c);
    }
    case LENSSIM_MASS_NFW: {
      /* kappa = 2 rho0 Rs F(x) = (p->b / 2) F(x) */
      return 0.5 * p->b * lenssim__nfw_F(r / p->a);
    }
    case LENSSIM_MASS_CONVERGENCE: return p->a;
    default: return 0.0; /* point mass (off-centre), shear */
  }
}

/* ---- ray tracing ---------------------------------------------------------------------------- */
/* A prepared lens model: profiles sorted by redshift with their multi-plane scale factors, and
 * the comoving distances of the planes. */
typedef struct {
  int multi_plane;
  size_t count;
  lenssim__mass_prep prep[LENSSIM_MAX_PROFILES];
  double z[LENSSIM_MAX_PROFILES];     /* redshift of each (sorted) profile */
  double dc[LENSSIM_MAX_PROFILES];    /* comoving distance to it */
  lenssim_cosmology cosmology;
} lenssim__tracer;

LENSSIM_API lenssim_result lenssim_lens_model_check(const lenssim_lens_model *model, lenssim_error *err) {
  size_t i;
  char what[32];
  if (!model) return lenssim__fail(err, LENSSIM_ERR_ARG, "lens model is NULL");
  if (model->num_lenses > LENSSIM_MAX_PROFILES)
    return lenssim__fail(err, LENSSIM_ERR_TOO_LARGE, "%lu lens entries, at most %d are supported",
                         (unsigned long)model->num_lenses, LENSSIM_MAX_PROFILES);
  if (model->num_lenses && !model->lenses) return lenssim__fail(err, LENSSIM_ERR_ARG, "lens entries are NULL");
  for (i = 0; i < model->num_lenses; i++) {
    lenssim_result r;
    snprintf(what, sizeof what, "lens[%lu]", (unsigned long)i);
    if ((r = lenssim_lens_check(&model->lenses[i], what, err)) != LENSSIM_OK) return r;
  }
  if (model->multi_plane) {
    double zconv = model->z_source_convention > 0 ? model->z_source_convention : model->z_source;
    lenssim_result r;
    if ((r = lenssim__model_check(&lenssim__cosmology_model, &model->cosmology, "cosmology", err)) != LENSSIM_OK ||
        (r = lenssim__model_check(&lenssim__multi_plane_model, model, "multi_plane", err)) != LENSSIM_OK)
      return r;
    for (i = 0; i < model->num_lenses; i++) {
      double z = model->lenses[i].redshift;
      if (!(z > 0 && z < zconv))
        return lenssim__fail(err, LENSSIM_ERR_RANGE,
                             "lens[%lu] '%s': redshift %g must be above 0 and below z_source_convention %g",
                             (unsigned long)i, lenssim_mass_kind_name(model->lenses[i].kind), z, zconv);
    }
  }
  return LENSSIM_OK;
}

static void lenssim__tracer_init(const lenssim_lens_model *model, lenssim__tracer *t) {
  size_t i, j, order[LENSSIM_MAX_PROFILES];
  size_t n = model->num_lenses;
  t->multi_plane = model->multi_plane;
  t->count = n;
  t->cosmology = model->cosmology;
  for (i = 0; i < n; i++) order[i] = i;
  if (model->multi_plane) {
    /* stable insertion sort by redshift: profiles in one plane keep their order */
    for (i = 1; i < n; i++)
      for (j = i; j > 0 && model->lenses[order[j - 1]].redshift > model->lenses[order[j]].redshift; j--) {
        size_t tmp = order[j]; order[j] = order[j - 1]; order[j - 1] = tmp;
      }
  }
  for (i = 0; i < n; i++) {
    const lenssim_mass *m = &model->lenses[order[i]];
    double scale = 1.0;
    t->z[i] = model->multi_plane ? m->redshift : 0.0;
    t->dc[i] = 0.0;
    if (model->multi_plane) {
      double zconv = model->z_source_convention > 0 ? model->z_source_convention : model->z_source;
      /* theta_E refers to a source at zconv: the physical deflection is alpha D_s/D_ls there */
      scale = lenssim_angular_diameter_distance(&model->cosmology, 0.0, zconv) /
              lenssim_angular_diameter_distance(&model->cosmology, m->redshift, zconv);
      if (i > 0 && t->z[i] == t->z[i - 1]) t->dc[i] = t->dc[i - 1];
      else t->dc[i] = lenssim_comoving_distance(&model->cosmology, 0.0, m->redshift);
    }
    lenssim__mass_prepare(m, scale, &t->prep[i]);
  }
}

/* Single plane: beta = theta - sum alpha. */
static void lenssim__shoot_single(const lenssim__tracer *t, size_t n, const double *x, const double *y,
                                  double *bx, double *by) {
  size_t i, k;
  for (i = 0; i < n; i++) { bx[i] = 0.0; by[i] = 0.0; }
  for (k = 0; k < t->count; k++) lenssim__mass_deflect_add(&t->prep[k], n, x, y, bx, by);
  for (i = 0; i < n; i++) { bx[i] = x[i] - bx[i]; by[i] = y[i] - by[i]; }
}

/* Multi-plane state of a bundle of rays: comoving transverse position (Mpc, as angle times
 * distance) and current angle. */
typedef struct {
  double *px, *py, *ax, *ay, *tx, *ty, *dx, *dy; /* position, angle, plane angle, deflection */
  size_t next_plane;     /* first profile not yet applied */
  double dc_last;        /* comoving distance of the last plane passed */
} lenssim__rays;

static void lenssim__rays_start(lenssim__rays *r, size_t n, const double *x, const double *y) {
  size_t i;
  for (i = 0; i < n; i++) { r->px[i] = 0.0; r->py[i] = 0.0; r->ax[i] = x[i]; r->ay[i] = y[i]; }
  r->next_plane = 0;
  r->dc_last = 0.0;
}

/* Carries the rays through every plane strictly below z_stop, then returns beta at z_stop. */
static void lenssim__rays_advance(const lenssim__tracer *t, lenssim__rays *r, size_t n, double z_stop,
                                  double *bx, double *by) {
  size_t i, k = r->next_plane;
  double dc_stop = lenssim_comoving_distance(&t->cosmology, 0.0, z_stop);
  while (k < t->count && t->z[k] < z_stop) {
    size_t first = k;
    double step = t->dc[k] - r->dc_last, inv = 1.0 / t->dc[k];
    for (i = 0; i < n; i++) {
      r->px[i] += r->ax[i] * step;
      r->py[i] += r->ay[i] * step;
      r->tx[i] = r->px[i] * inv;
      r->ty[i] = r->py[i] * inv;
      r->dx[i] = 0.0;
      r->dy[i] = 0.0;
    }
    /* every profile of this plane sees the same angles */
    while (k < t->count && t->z[k] == t->z[first]) {
      lenssim__mass_deflect_add(&t->prep[k], n, r->tx, r->ty, r->dx, r->dy);
      k++;
    }
    for (i = 0; i < n; i++) { r->ax[i] -= r->dx[i]; r->ay[i] -= r->dy[i]; }
    r->dc_last = t->dc[first];
  }
  r->next_plane = k;
  {
    double step = dc_stop - r->dc_last, inv = 1.0 / dc_stop;
    for (i = 0; i < n; i++) {
      bx[i] = (r->px[i] + r->ax[i] * step) * inv;
      by[i] = (r->py[i] + r->ay[i] * step) * inv;
    }
  }
}

/* Rays for positions in chunks of this many, so that the stack holds the state. */
#define LENSSIM__CHUNK 256

LENSSIM_API lenssim_result lenssim_ray_shoot(const lenssim_lens_model *model, double z_source, size_t n,
                                             const double *x, const double *y, double *beta_x, double *beta_y,
                                             lenssim_error *err) {
  lenssim__tracer tracer, *t = &tracer;
  lenssim_result r;
  if ((r = lenssim_lens_model_check(model, err)) != LENSSIM_OK) return r;
  if (n && (!x || !y || !beta_x || !beta_y)) return lenssim__fail(err, LENSSIM_ERR_ARG, "ray_shoot: NULL array");
  if (z_source <= 0) z_source = model->z_source;
  if (model->multi_plane && !(z_source > 0 && z_source < 1100))
    return lenssim__fail(err, LENSSIM_ERR_RANGE, "ray_shoot: source redshift %g is out of range", z_source);
  lenssim__tracer_init(model, t);
  if (!model->multi_plane) {
    lenssim__shoot_single(t, n, x, y, beta_x, beta_y);
  } else {
    double buf[8][LENSSIM__CHUNK];
    size_t start;
    lenssim__rays rays;
    rays.px = buf[0]; rays.py = buf[1]; rays.ax = buf[2]; rays.ay = buf[3];
    rays.tx = buf[4]; rays.ty = buf[5]; rays.dx = buf[6]; rays.dy = buf[7];
    for (start = 0; start < n; start += LENSSIM__CHUNK) {
      size_t m = n - start < LENSSIM__CHUNK ? n - start : LENSSIM__CHUNK;
      lenssim__rays_start(&rays, m, x + start, y + start);
      lenssim__rays_advance(t, &rays, m, z_source, beta_x + start, beta_y + start);
    }
  }
  return LENSSIM_OK;
}

LENSSIM_API lenssim_result lenssim_deflection(const lenssim_lens_model *model, size_t n, const double *x,
                                              const double *y, double *alpha_x, double *alpha_y, lenssim_error *err) {
  size_t i;
  lenssim_result r = lenssim_ray_shoot(model, 0.0, n, x, y, alpha_x, alpha_y, err);
  if (r != LENSSIM_OK) return r;
  for (i = 0; i < n; i++) { alpha_x[i] = x[i] - alpha_x[i]; alpha_y[i] = y[i] - alpha_y[i]; }
  return LENSSIM_OK;
}

/* Jacobian d beta / d theta by central differences with step h (arcsec). */
static int lenssim__jacobian(const lenssim_lens_model *model, double x, double y, double h, double J[4]) {
  double px[4] = {x + h, x - h, x, x}, py[4] = {y, y, y + h, y - h}, bx[4], by[4];
  if (lenssim_ray_shoot(model, 0.0, 4, px, py, bx, by, NULL) != LENSSIM_OK) return 0;
  J[0] = (bx[0] - bx[1]) / (2 * h); /* d beta_x / dx */
  J[1] = (bx[2] - bx[3]) / (2 * h); /* d beta_x / dy */
  J[2] = (by[0] - by[1]) / (2 * h);
  J[3] = (by[2] - by[3]) / (2 * h);
  return 1;
}

LENSSIM_API double lenssim_convergence(const lenssim_lens_model *model, double x, double y) {
  if (!model) return 0.0;
  if (!model->multi_plane) {
    double kappa = 0.0;
    size_t i;
    lenssim__mass_prep p;
    for (i = 0; i < model->num_lenses && i < LENSSIM_MAX_PROFILES; i++) {
      lenssim__mass_prepare(&model->lenses[i], 1.0, &p);
      kappa += lenssim__mass_kappa(&p, x, y);
    }
    return kappa;
  } else {
    double J[4];
    if (!lenssim__jacobian(model, x, y, 1e-5, J)) return 0.0;
    return 1.0 - 0.5 * (J[0] + J[3]);
  }
}

LENSSIM_API double lenssim_magnification(const lenssim_lens_model *model, double x, double y) {
  double J[4], det;
  if (!model || !lenssim__jacobian(model, x, y, 1e-5, J)) return 0.0;
  det = J[0] * J[3] - J[1] * J[2];
  return 1.0 / det;
}

/* ---- light ---------------------------------------------------------------------------------- */
typedef struct {
  lenssim_light_kind kind;
  double amp, cx, cy, cos_phi, sin_phi, q, inv_q;
  double log_scale2;  /* SERSIC: log(1/R_sersic^2) */
  double half_inv_n;  /* SERSIC: 1/(2n) */
  double bn;          /* SERSIC: b_n */
  double inv_2s2;     /* GAUSSIAN: 1/(2 sigma^2) */
  double redshift;
} lenssim__light_prep;

static void lenssim__light_prepare(const lenssim_light *l, lenssim__light_prep *p) {
  double phi = 0.0, q = 1.0;
  memset(p, 0, sizeof *p);
  p->kind = l->kind;
  p->cx = l->center_x;
  p->cy = l->center_y;
  p->redshift = l->redshift;
  if (l->kind == LENSSIM_LIGHT_SERSIC_ELLIPSE || l->kind == LENSSIM_LIGHT_GAUSSIAN_ELLIPSE)
    lenssim__phi_q(l->e1, l->e2, &phi, &q);
  p->cos_phi = cos(phi);
  p->sin_phi = sin(phi);
  p->q = q;
  p->inv_q = 1.0 / q;
  if (l->kind == LENSSIM_LIGHT_SERSIC || l->kind == LENSSIM_LIGHT_SERSIC_ELLIPSE) {
    double bn = 1.9992 * l->n_sersic - 0.3271;
    p->bn = bn > 1e-5 ? bn : 1e-5;
    p->amp = l->amp;
    p->log_scale2 = -2.0 * log(l->R_sersic);
    p->half_inv_n = 0.5 / l->n_sersic;
  } else {
    p->inv_2s2 = 0.5 / (l->sigma * l->sigma);
    p->amp = l->amp / (2.0 * LENSSIM__PI * l->sigma * l->sigma);
  }
}

/* Adds one profile's surface brightness at n positions into out. */
static void lenssim__light_add(const lenssim__light_prep *p, size_t n, const double *x, const double *y, double *out) {
  size_t i;
  const double cx = p->cx, cy = p->cy, cs = p->cos_phi, sn = p->sin_phi, q = p->q, iq = p->inv_q, amp = p->amp;
  switch (p->kind) {
    case LENSSIM_LIGHT_SERSIC:
    case LENSSIM_LIGHT_SERSIC_ELLIPSE: {
      /* (R/Rs)^(1/n) = exp(log(R^2/Rs^2)/(2n)): one log and two exp per sample */
      const double ls = p->log_scale2, hn = p->half_inv_n, bn = p->bn;
      for (i = 0; i < n; i++) {
        double dx = x[i] - cx, dy = y[i] - cy;
        double xr = dx * cs + dy * sn, yr = -dx * sn + dy * cs;
        double R2 = q * xr * xr + iq * yr * yr;
        R2 = R2 > 1e-8 ? R2 : 1e-8; /* R floored at 1e-4 */
        out[i] += amp * lenssim__exp(bn - bn * lenssim__exp((lenssim__log(R2) + ls) * hn));
      }
      break;
    }
    case LENSSIM_LIGHT_GAUSSIAN:
    case LENSSIM_LIGHT_GAUSSIAN_ELLIPSE: {
      const double k = p->inv_2s2;
      for (i = 0; i < n; i++) {
        double dx = x[i] - cx, dy = y[i] - cy;
        double xr = dx * cs + dy * sn, yr = -dx * sn + dy * cs;
        out[i] += amp * lenssim__exp(-(q * xr * xr + iq * yr * yr) * k);
      }
      break;
    }
    default: break;
  }
}

LENSSIM_API void lenssim_light_surface_brightness(const lenssim_light *lights, size_t count, size_t n,
                                                  const double *x, const double *y, double *out) {
  size_t k;
  lenssim__light_prep p;
  for (k = 0; k < count; k++) {
    lenssim__light_prepare(&lights[k], &p);
    lenssim__light_add(&p, n, x, y, out);
  }
}

/* ---- single-precision render kernels -------------------------------------------------------
 * lenssim_render evaluates the sub-pixel samples in float32 by default: twice the SIMD lanes
 * and half the polynomial degree of double precision, at a relative error of ~1e-7 on each
 * sample, far below any noise. The same functions in double (above) serve the public API and
 * the render option `double_precision`. */
LENSSIM__INLINE float lenssim__bits_to_float(uint32_t u) { float f; memcpy(&f, &u, sizeof f); return f; }
LENSSIM__INLINE uint32_t lenssim__float_to_bits(float f) { uint32_t u; memcpy(&u, &f, sizeof u); return u; }

/* expf: as lenssim__exp with a degree-7 polynomial (truncation 5e-9), x clamped to [-87, 88]. */
LENSSIM__INLINE float lenssim__expf(float x) {
  static const float taylor[8] = {1.0f / 5040.0f, 1.0f / 720.0f, 1.0f / 120.0f, 1.0f / 24.0f, 1.0f / 6.0f, 0.5f, 1.0f, 1.0f};
  const float shifter = 12582912.0f; /* 1.5 * 2^23 */
  float t, kd, r, p;
  x = x < -87.0f ? -87.0f : x;
  x = x > 88.0f ? 88.0f : x;
  t = LENSSIM__MADDF(x, 1.44269504f, shifter);
  kd = t - shifter;
  r = LENSSIM__MADDF(-kd, 0.693145752f, x);   /* ln2 split in a high part exact in float ... */
  r = LENSSIM__MADDF(-kd, 1.42860677e-6f, r); /* ... and the rest */
  p = lenssim__hornerf(taylor, 8, r);
  return p * lenssim__bits_to_float((lenssim__float_to_bits(t) + 127u) << 23);
}

/* The argument reduction of lenssim__logf and lenssim__log2f, as in lenssim__log: for x > 0
 * (floored at 1e-37), x = m 2^e with m in [sqrt(1/2), sqrt(2)); returns s = (m-1)/(m+1), so that
 * log m = 2 atanh(s), and sets *e. */
LENSSIM__INLINE float lenssim__log_reducef(float x, float *e) {
  uint32_t u;
  float m, above, m_half;
  x = x < 1e-37f ? 1e-37f : x;
  u = lenssim__float_to_bits(x);
  *e = lenssim__bits_to_float(0x4b000000u | (u >> 23)) - (8388608.0f + 127.0f);
  m = lenssim__bits_to_float((u & 0x007fffffu) | 0x3f800000u);
  above = m > 1.41421356f ? 1.0f : 0.0f;
  m_half = m * 0.5f;
  m = above > 0 ? m_half : m;
  *e += above;
  return (m - 1.0f) / (m + 1.0f);
}

/* logf: as lenssim__log, series to s^9 (truncation 2e-9). */
LENSSIM__INLINE float lenssim__logf(float x) {
  static const float atanh_series[5] = {1.0f / 9.0f, 1.0f / 7.0f, 1.0f / 5.0f, 1.0f / 3.0f, 1.0f};
  float e, s = lenssim__log_reducef(x, &e);
  float p = lenssim__hornerf(atanh_series, 5, s * s);
  return LENSSIM__MADDF(e, 0.693147181f, 2.0f * s * p);
}

/* 1/x for x > 0 without a division (a vector division costs as much as a dozen multiply-adds):
 * an exponent-negating bit trick (relative error < 12.5%), then three Newton steps
 * r = r (2 - x r), each squaring the error: 4e-8. */
LENSSIM__INLINE float lenssim__rcpf(float x) {
  float r = lenssim__bits_to_float(0x7ef311c3u - lenssim__float_to_bits(x));
  r = r * LENSSIM__MADDF(-x, r, 2.0f);
  r = r * LENSSIM__MADDF(-x, r, 2.0f);
  r = r * LENSSIM__MADDF(-x, r, 2.0f);
  return r;
}

/* 2^x for x in [-126, 127] (clamped): 2^k from the exponent bits, 2^r (|r| <= 1/2) by a
 * degree-5 polynomial interpolating at the Chebyshev nodes (relative error 1.0e-7). */
LENSSIM__INLINE float lenssim__exp2f(float x) {
  const float shifter = 12582912.0f; /* 1.5 * 2^23 */
  static const float chebyshev[6] = {1.3390863364340551e-3f, 9.6760319183294054e-3f, 5.5503571142206873e-2f,
                                     0.24022107485308047f,   0.69314718802622688f,   1.0000000754548974f};
  float t, r, p;
  x = x < -126.0f ? -126.0f : x;
  x = x > 127.0f ? 127.0f : x;
  t = x + shifter;
  r = x - (t - shifter);
  p = lenssim__hornerf(chebyshev, 6, r);
  return p * lenssim__bits_to_float((lenssim__float_to_bits(t) + 127u) << 23);
}

/* log2(x) for x > 0 (floored at 1e-37): e + 2 atanh(s)/ln 2 as in lenssim__logf, series to s^7
 * (relative truncation 8e-8). */
LENSSIM__INLINE float lenssim__log2f(float x) {
  static const float atanh_series[4] = {1.0f / 7.0f, 1.0f / 5.0f, 1.0f / 3.0f, 1.0f};
  float e, s = lenssim__log_reducef(x, &e);
  float p = lenssim__hornerf(atanh_series, 4, s * s);
  return LENSSIM__MADDF(2.8853900817779268f * s, p, e);
}

/* 1/sqrt(v) for v >= 0: the exponent-halving bit-trick guess, then `steps` Newton steps
 * y = y (3/2 - v y^2 / 2), each squaring the error. */
LENSSIM__INLINE float lenssim__rsqrt_newtonf(float v, int steps) {
  float half = 0.5f * v, y = lenssim__bits_to_float(0x5f3759dfu - (lenssim__float_to_bits(v) >> 1));
  int i;
  LENSSIM__UNROLL_FULL
  for (i = 0; i < steps; i++) y = y * LENSSIM__MADDF(-half * y, y, 1.5f);
  return y;
}

/* sqrtf without errno (see lenssim__sqrt): two Newton steps on 1/sqrt from the bit-trick
 * guess (error 4e-6), then one on sqrt itself (error squared: far below float resolution). */
LENSSIM__INLINE float lenssim__sqrtf(float v) {
  float y, r;
  v = v > 0.0f ? v : 0.0f;
  y = lenssim__rsqrt_newtonf(v, 2);
  r = v * y;
  return LENSSIM__MADDF(LENSSIM__MADDF(-r, r, v), 0.5f * y, r);
}

/* sqrt(v) and 1/sqrt(v) together for v > 0 (floored at 1e-30): three Newton steps on 1/sqrt
 * (error 2e-11 before rounding), then the product. */
LENSSIM__INLINE float lenssim__sqrt_rsqrtf(float v, float *inv_sqrt) {
  float y;
  v = v > 1e-30f ? v : 1e-30f;
  y = lenssim__rsqrt_newtonf(v, 3);
  *inv_sqrt = y;
  return v * y;
}

/* The SIE's deflection in its own frame, times k = b/sqrt(1-q^2) (scale included); f = sqrt(1-q^2).
 * The 1e-10 core is far below float resolution of any pixel offset: dropped. Divisions would
 * dominate the cost, so only the logarithm keeps one: 1/psi comes with psi from the Newton
 * square root; atan(A/B) as atan2 (one reciprocal after choosing the octant); atanh(z) by its
 * series for |z| < 1/10 (exact for the near-round lenses where z is tiny), else
 * log((1+z)/(1-z))/2. */
LENSSIM__INLINE void lenssim__sie_frame_f(float xr, float yr, float q2, float f, float k, float *axr, float *ayr) {
  float inv_psi, psi = lenssim__sqrt_rsqrtf(q2 * xr * xr + yr * yr, &inv_psi);
  float A = f * fabsf(xr), B = psi;
  float mn = A < B ? A : B, mx = A < B ? B : A;
  int mid = mn > 0.414213562f * mx;
  float num = mid ? mn - mx : mn, den = mid ? mn + mx : mx, t = num * lenssim__rcpf(den), t2 = t * t;
  float z = f * yr * inv_psi, z2 = z * z, r, r_mid, r_big, series, logform;
  /* atan series to t^15 for |t| <= tan(pi/8): truncation 4e-8 */
  static const float atan_series[8] = {-1.0f / 15.0f, 1.0f / 13.0f, -1.0f / 11.0f, 1.0f / 9.0f,
                                       -1.0f / 7.0f,  1.0f / 5.0f,  -1.0f / 3.0f,  1.0f};
  static const float atanh_series[4] = {1.0f / 7.0f, 1.0f / 5.0f, 1.0f / 3.0f, 1.0f};
  r = t * lenssim__hornerf(atan_series, 8, t2);
  r_mid = r + 0.785398163f;
  r = mid ? r_mid : r;
  r_big = 1.57079633f - r;
  r = A > B ? r_big : r;
  r = xr < 0 ? -r : r;
  /* atanh series to z^7 for |z| < 0.1 (truncation 1e-10), else ln2/2 log2((1+z)/(1-z)) */
  series = z * lenssim__hornerf(atanh_series, 4, z2);
  logform = 0.34657359f * lenssim__log2f((1.0f + z) * lenssim__rcpf(1.0f - z));
  *axr = k * r;
  *ayr = k * (z2 < 0.01f ? series : logform);
}

/* Subtracts scale * alpha of one profile at n float positions from (bx, by): starting from
 * beta = theta, the lens equation needs no separate pass. The rarely used EPL and NFW go
 * through the double code one sample at a time. */
LENSSIM__CLONES static void lenssim__mass_deflect_sub_f(const lenssim__mass_prep *p, size_t n, const float *x, const float *y,
                                        float *bx, float *by) {
  size_t i;
  const float cx = (float)p->cx, cy = (float)p->cy, cs = (float)p->cos_phi, sn = (float)p->sin_phi;
  const float sc = (float)p->scale;
  switch (p->kind) {
    case LENSSIM_MASS_SIS: {
      const float k = (float)(p->a * p->scale);
      LENSSIM__UNROLL2
      for (i = 0; i < n; i++) {
        float dx = x[i] - cx, dy = y[i] - cy, r2 = dx * dx + dy * dy;
        float inv = k / lenssim__sqrtf(r2 > 1e-30f ? r2 : 1e-30f);
        bx[i] -= dx * inv;
        by[i] -= dy * inv;
      }
      break;
    }
    case LENSSIM_MASS_POINT_MASS: {
      const float k = (float)(p->a * p->scale);
      LENSSIM__UNROLL2
      for (i = 0; i < n; i++) {
        float dx = x[i] - cx, dy = y[i] - cy, r2 = dx * dx + dy * dy;
        float inv = k / (r2 > 1e-30f ? r2 : 1e-30f);
        bx[i] -= dx * inv;
        by[i] -= dy * inv;
      }
      break;
    }
    case LENSSIM_MASS_SIE: {
      const float q2 = (float)(p->a * p->a), k = (float)(p->b * p->scale), f = (float)p->c;
      LENSSIM__UNROLL2
      for (i = 0; i < n; i++) {
        float dx = x[i] - cx, dy = y[i] - cy, axr, ayr;
        lenssim__sie_frame_f(dx * cs + dy * sn, -dx * sn + dy * cs, q2, f, k, &axr, &ayr);
        bx[i] -= axr * cs - ayr * sn;
        by[i] -= axr * sn + ayr * cs;
      }
      break;
    }
    case LENSSIM_MASS_SHEAR: {
      const float g1 = (float)(p->a * p->scale), g2 = (float)(p->b * p->scale);
      LENSSIM__UNROLL2
      for (i = 0; i < n; i++) {
        float dx = x[i] - cx, dy = y[i] - cy;
        bx[i] -= g1 * dx + g2 * dy;
        by[i] -= g2 * dx - g1 * dy;
      }
      break;
    }
    case LENSSIM_MASS_CONVERGENCE: {
      const float k = (float)(p->a * p->scale);
      LENSSIM__UNROLL2
      for (i = 0; i < n; i++) {
        bx[i] -= k * (x[i] - cx);
        by[i] -= k * (y[i] - cy);
      }
      break;
    }
    default:
      (void)sc;
      LENSSIM__UNROLL2
      for (i = 0; i < n; i++) {
        double xd = x[i], yd = y[i], axd = 0.0, ayd = 0.0;
        lenssim__mass_deflect_add(p, 1, &xd, &yd, &axd, &ayd);
        bx[i] -= (float)axd;
        by[i] -= (float)ayd;
      }
      break;
  }
}

/* As lenssim__mass_deflect_sub_f along one sub-row (y constant): the SIE's frame coordinates
 * are then one multiply-add each from x. */
LENSSIM__CLONES static void lenssim__mass_deflect_sub_row_f(const lenssim__mass_prep *p, size_t n, const float *x, const float *y,
                                            float *bx, float *by) {
  size_t i;
  if (p->kind == LENSSIM_MASS_SIE) {
    const float cs = (float)p->cos_phi, sn = (float)p->sin_phi, cx = (float)p->cx, dy = y[0] - (float)p->cy;
    const float c1 = dy * sn, c2 = dy * cs;
    const float q2 = (float)(p->a * p->a), k = (float)(p->b * p->scale), f = (float)p->c;
    LENSSIM__UNROLL2
    for (i = 0; i < n; i++) {
      float dx = x[i] - cx, axr, ayr;
      lenssim__sie_frame_f(LENSSIM__MADDF(dx, cs, c1), LENSSIM__MADDF(-dx, sn, c2), q2, f, k, &axr, &ayr);
      bx[i] -= axr * cs - ayr * sn;
      by[i] -= axr * sn + ayr * cs;
    }
    return;
  }
  lenssim__mass_deflect_sub_f(p, n, x, y, bx, by);
}

/* Surface brightness below 2^-100 is set to 0 rather than computed: amp times a tiny exponential
 * would otherwise be a subnormal float, and each subnormal result costs a microcode assist (a
 * Gaussian clump far from most samples made whole images four times slower). emin is the base-2
 * exponent below which a profile of amplitude |amp| contributes less than 2^-100. */
static float lenssim__light_emin2(double amp) {
  double e;
  amp = fabs(amp);
  if (!(amp > 0)) return 1e30f; /* no light: every sample is below */
  e = -100.0 - log2(amp);
  return (float)(e < -120.0 ? -120.0 : (e > 1e30 ? 1e30 : e));
}

LENSSIM__CLONES static void lenssim__light_add_f(const lenssim__light_prep *p, size_t n, const float *x, const float *y, float *out) {
  size_t i;
  const float cx = (float)p->cx, cy = (float)p->cy, cs = (float)p->cos_phi, sn = (float)p->sin_phi;
  const float q = (float)p->q, iq = (float)p->inv_q, amp = (float)p->amp;
  switch (p->kind) {
    case LENSSIM_LIGHT_SERSIC:
    case LENSSIM_LIGHT_SERSIC_ELLIPSE: {
      /* in base 2: (R/Rs)^(1/n) = 2^((log2 R^2 - log2 Rs^2)/(2n)); I = amp 2^(c - c t), c = b_n log2(e) */
      const float ls = (float)(p->log_scale2 * 1.4426950408889634), hn = (float)p->half_inv_n;
      const float c = (float)(p->bn * 1.4426950408889634), emin = lenssim__light_emin2(p->amp);
      LENSSIM__UNROLL2
      for (i = 0; i < n; i++) {
        float dx = x[i] - cx, dy = y[i] - cy;
        float xr = dx * cs + dy * sn, yr = -dx * sn + dy * cs;
        float R2 = q * xr * xr + iq * yr * yr, t, e;
        R2 = R2 > 1e-8f ? R2 : 1e-8f;
        t = lenssim__exp2f((lenssim__log2f(R2) + ls) * hn);
        e = LENSSIM__MADDF(-c, t, c);
        out[i] += (e > emin ? amp : 0.0f) * lenssim__exp2f(e > emin ? e : emin);
      }
      break;
    }
    case LENSSIM_LIGHT_GAUSSIAN:
    case LENSSIM_LIGHT_GAUSSIAN_ELLIPSE: {
      const float k = (float)p->inv_2s2, emin = lenssim__light_emin2(p->amp) * 0.693147181f;
      LENSSIM__UNROLL2
      for (i = 0; i < n; i++) {
        float dx = x[i] - cx, dy = y[i] - cy;
        float xr = dx * cs + dy * sn, yr = -dx * sn + dy * cs, e = -(q * xr * xr + iq * yr * yr) * k;
        out[i] += (e > emin ? amp : 0.0f) * lenssim__expf(e > emin ? e : emin);
      }
      break;
    }
    default: break;
  }
}

/* Lens light along one sub-row (y constant): the Sersic's R^2 is then a quadratic in x,
 * ((a2 dx + a1) dx + a0) with dx = x - center_x, three operations instead of nine per sample.
 * Other profiles take the general path. */
LENSSIM__CLONES static void lenssim__light_add_row_f(const lenssim__light_prep *p, size_t n, const float *x, const float *y,
                                     float *out) {
  size_t i;
  if (p->kind == LENSSIM_LIGHT_SERSIC || p->kind == LENSSIM_LIGHT_SERSIC_ELLIPSE) {
    double cs = p->cos_phi, sn = p->sin_phi, q = p->q, iq = p->inv_q, dy = (double)y[0] - p->cy;
    const float a2 = (float)(q * cs * cs + iq * sn * sn), a1 = (float)(2.0 * dy * cs * sn * (q - iq));
    const float a0 = (float)(dy * dy * (q * sn * sn + iq * cs * cs)), cx = (float)p->cx;
    const float ls = (float)(p->log_scale2 * 1.4426950408889634), hn = (float)p->half_inv_n;
    const float c = (float)(p->bn * 1.4426950408889634), amp = (float)p->amp, emin = lenssim__light_emin2(p->amp);
    LENSSIM__UNROLL2
    for (i = 0; i < n; i++) {
      float dx = x[i] - cx, R2 = LENSSIM__MADDF(LENSSIM__MADDF(a2, dx, a1), dx, a0), t, e;
      R2 = R2 > 1e-8f ? R2 : 1e-8f;
      t = lenssim__exp2f((lenssim__log2f(R2) + ls) * hn);
      e = LENSSIM__MADDF(-c, t, c);
      out[i] += (e > emin ? amp : 0.0f) * lenssim__exp2f(e > emin ? e : emin);
    }
    return;
  }
  lenssim__light_add_f(p, n, x, y, out);
}

/* ---- PSF ------------------------------------------------------------------------------------ */
static int lenssim__gauss_radius(double sigma_pix) { return (int)(5.0 * sigma_pix + 0.5); }

static int lenssim__moffat_radius(const lenssim_psf *psf, double pixel_scale) {
  return (int)ceil(3.0 * psf->fwhm / pixel_scale);
}

LENSSIM_API size_t lenssim_psf_scratch_doubles(const lenssim_psf *psf, int n, double pixel_scale) {
  size_t nn = (size_t)n * (size_t)n;
  if (!psf || psf->kind == LENSSIM_PSF_NONE || n <= 0) return 0;
  if (psf->kind == LENSSIM_PSF_GAUSSIAN) {
    int r = lenssim__gauss_radius(psf->fwhm / (2.0 * sqrt(2.0 * log(2.0))) / pixel_scale);
    return nn + (size_t)(2 * r + 1) + (size_t)n + 2 * (size_t)r;
  }
  if (psf->kind == LENSSIM_PSF_MOFFAT) {
    int r = lenssim__moffat_radius(psf, pixel_scale);
    return nn + (size_t)(2 * r + 1) * (size_t)(2 * r + 1);
  }
  return nn + (size_t)psf->kernel_size * (size_t)psf->kernel_size;
}

/* 1D correlation of each of n rows (length n) with a symmetric kernel of radius r, edges
 * replicated (scipy mode 'nearest'), over a padded copy of the row. */
static void lenssim__convolve_rows(const double *src, double *dst, int n, const double *kernel, int radius,
                                   double *padded) {
  int row, i, k;
  for (row = 0; row < n; row++) {
    const double *s = src + (size_t)row * n;
    double *d = dst + (size_t)row * n;
    for (i = 0; i < n + 2 * radius; i++) {
      int j = i - radius;
      j = j < 0 ? 0 : (j >= n ? n - 1 : j);
      padded[i] = s[j];
    }
    for (i = 0; i < n; i++) {
      double acc = 0.0;
      for (k = 0; k <= 2 * radius; k++) acc += kernel[k] * padded[i + k];
      d[i] = acc;
    }
  }
}

/* 2D convolution with a (2r+1)^2 kernel, zeros outside the image. Each output row gathers the
 * kernel's terms in the order a = -r..r, b = -r..r, as a per-pixel loop would, but a whole row at
 * a time (contiguous, so it vectorises). */
LENSSIM__CLONES static void lenssim__convolve_2d(const double *src, double *dst, int n, const double *kernel, int r) {
  int i, j, a, b, side = 2 * r + 1;
  for (i = 0; i < n; i++) {
    double *out = dst + (size_t)i * n;
    for (j = 0; j < n; j++) out[j] = 0.0;
    for (a = -r; a <= r; a++) {
      int si = i - a;
      const double *row;
      if (si < 0 || si >= n) continue;
      row = src + (size_t)si * n;
      for (b = -r; b <= r; b++) {
        /* out[j] += w src[si][j - b] for the j with 0 <= j - b < n */
        double w = kernel[(a + r) * side + (b + r)];
        int lo = b > 0 ? b : 0, hi = b < 0 ? n + b : n;
        for (j = lo; j < hi; j++) out[j] += w * row[j - b];
      }
    }
  }
}

LENSSIM_API lenssim_result lenssim_psf_convolve(const lenssim_psf *psf, int n, double pixel_scale, double *image,
                                                double *scratch, lenssim_error *err) {
  size_t nn = (size_t)n * (size_t)n;
  if (!psf || psf->kind == LENSSIM_PSF_NONE) return LENSSIM_OK;
  if (n <= 0 || !(pixel_scale > 0) || !image || !scratch)
    return lenssim__fail(err, LENSSIM_ERR_ARG, "psf: bad image size, pixel scale or buffers");
  if (psf->kind == LENSSIM_PSF_GAUSSIAN || psf->kind == LENSSIM_PSF_MOFFAT) {
    if (!(psf->fwhm > 0 && psf->fwhm < 1e3))
      return lenssim__fail(err, LENSSIM_ERR_RANGE, "psf: fwhm = %g is out of range (must be > 0)", psf->fwhm);
  }
  if (psf->kind == LENSSIM_PSF_GAUSSIAN) {
    /* as scipy.ndimage.gaussian_filter(truncate=5): a sampled, normalised Gaussian of radius
     * int(5 sigma + 0.5), along rows then columns */
    double sigma = psf->fwhm / (2.0 * sqrt(2.0 * log(2.0))) / pixel_scale, sum = 0.0;
    int r = lenssim__gauss_radius(sigma), k;
    double *tmp = scratch, *kernel = scratch + nn, *padded = kernel + 2 * r + 1;
    for (k = -r; k <= r; k++) sum += kernel[k + r] = exp(-0.5 * (double)k * (double)k / (sigma * sigma));
    for (k = 0; k <= 2 * r; k++) kernel[k] /= sum;
    /* along y (axis 0): whole rows at a time, rows beyond the edges replaced by the edge row */
    {
      int i, kk, j;
      for (i = 0; i < n; i++) {
        double *out = tmp + (size_t)i * n;
        for (j = 0; j < n; j++) out[j] = 0.0;
        for (kk = -r; kk <= r; kk++) {
          int src_row = i + kk < 0 ? 0 : (i + kk >= n ? n - 1 : i + kk);
          const double *in = image + (size_t)src_row * n;
          double w = kernel[kk + r];
          for (j = 0; j < n; j++) out[j] += w * in[j];
        }
      }
    }
    lenssim__convolve_rows(tmp, image, n, kernel, r, padded); /* along x (axis 1) */
    return LENSSIM_OK;
  }
  if (psf->kind == LENSSIM_PSF_MOFFAT) {
    double beta = psf->moffat_beta > 0 ? psf->moffat_beta : 3.5, sum = 0.0;
    double alpha = psf->fwhm / (2.0 * sqrt(pow(2.0, 1.0 / beta) - 1.0)) / pixel_scale;
    int r = lenssim__moffat_radius(psf, pixel_scale), a, b, side = 2 * r + 1;
    double *kernel = scratch + nn;
    if (!(beta > 1.0 && beta < 100.0))
      return lenssim__fail(err, LENSSIM_ERR_RANGE, "psf: Moffat beta = %g is out of range (1, 100)", beta);
    for (a = -r; a <= r; a++)
      for (b = -r; b <= r; b++)
        sum += kernel[(a + r) * side + b + r] = pow(1.0 + ((double)a * a + (double)b * b) / (alpha * alpha), -beta);
    for (a = 0; a < side * side; a++) kernel[a] /= sum;
    memcpy(scratch, image, nn * sizeof *image);
    lenssim__convolve_2d(scratch, image, n, kernel, r);
    return LENSSIM_OK;
  }
  if (psf->kind == LENSSIM_PSF_PIXEL) {
    int side = psf->kernel_size, a;
    double sum = 0.0, *kernel = scratch + nn;
    if (!psf->kernel) return lenssim__fail(err, LENSSIM_ERR_ARG, "psf: a PIXEL PSF needs its kernel (NULL given)");
    if (side < 1 || side % 2 == 0 || side > 4 * LENSSIM_MAX_PIXELS + 1)
      return lenssim__fail(err, LENSSIM_ERR_ARG, "psf: a PIXEL kernel needs an odd side (got %d)", side);
    for (a = 0; a < side * side; a++) {
      if (!lenssim__finite(psf->kernel[a])) return lenssim__fail(err, LENSSIM_ERR_RANGE, "psf: kernel has a non-finite value");
      sum += psf->kernel[a];
    }
    if (!(sum > 0) || !lenssim__finite(sum))
      return lenssim__fail(err, LENSSIM_ERR_RANGE, "psf: kernel sums to %g, must be positive and finite", sum);
    for (a = 0; a < side * side; a++) kernel[a] = psf->kernel[a] / sum;
    memcpy(scratch, image, nn * sizeof *image);
    lenssim__convolve_2d(scratch, image, n, kernel, side / 2);
    return LENSSIM_OK;
  }
  return lenssim__fail(err, LENSSIM_ERR_ARG, "psf: unknown kind %d", (int)psf->kind);
}

/* ---- rendering ------------------------------------------------------------------------------ */
LENSSIM_API lenssim_result lenssim_scene_check(const lenssim_scene *scene, lenssim_error *err) {
  size_t i;
  lenssim_result r;
  char what[40];
  if (!scene) return lenssim__fail(err, LENSSIM_ERR_ARG, "scene is NULL");
  if ((r = lenssim__model_check(&lenssim__grid_model, &scene->grid, "grid", err)) != LENSSIM_OK) return r;
  if ((r = lenssim_lens_model_check(&scene->lens, err)) != LENSSIM_OK) return r;
  if (scene->num_lens_light > LENSSIM_MAX_PROFILES || scene->num_source_light > LENSSIM_MAX_PROFILES)
    return lenssim__fail(err, LENSSIM_ERR_TOO_LARGE, "at most %d light entries of each kind are supported",
                         LENSSIM_MAX_PROFILES);
  if ((scene->num_lens_light && !scene->lens_light) || (scene->num_source_light && !scene->source_light))
    return lenssim__fail(err, LENSSIM_ERR_ARG, "light entries are NULL");
  for (i = 0; i < scene->num_lens_light; i++) {
    snprintf(what, sizeof what, "lens_light[%lu]", (unsigned long)i);
    if ((r = lenssim_light_check(&scene->lens_light[i], what, err)) != LENSSIM_OK) return r;
  }
  for (i = 0; i < scene->num_source_light; i++) {
    snprintf(what, sizeof what, "source_light[%lu]", (unsigned long)i);
    if ((r = lenssim_light_check(&scene->source_light[i], what, err)) != LENSSIM_OK) return r;
  }
  if ((int)scene->psf.kind < 0 || (size_t)scene->psf.kind >= sizeof lenssim__psf_models / sizeof lenssim__psf_models[0])
    return lenssim__fail(err, LENSSIM_ERR_UNKNOWN, "psf: unknown kind %d", (int)scene->psf.kind);
  if ((r = lenssim__model_check(&lenssim__psf_models[scene->psf.kind], &scene->psf, "psf", err)) != LENSSIM_OK) return r;
  if (scene->psf.kind != LENSSIM_PSF_NONE) {
    if (scene->psf.kind == LENSSIM_PSF_GAUSSIAN &&
        scene->psf.fwhm / scene->grid.pixel_scale > 200.0 * (double)scene->grid.num_pix)
      return lenssim__fail(err, LENSSIM_ERR_RANGE, "psf: fwhm = %g is far larger than the image", scene->psf.fwhm);
    if (scene->psf.kind == LENSSIM_PSF_MOFFAT && scene->psf.fwhm / scene->grid.pixel_scale > 2.0 * scene->grid.num_pix)
      return lenssim__fail(err, LENSSIM_ERR_RANGE, "psf: Moffat fwhm = %g is larger than the image", scene->psf.fwhm);
    if (scene->psf.kind == LENSSIM_PSF_PIXEL && !scene->psf.kernel)
      return lenssim__fail(err, LENSSIM_ERR_ARG, "psf: a PIXEL PSF needs its kernel (NULL given)");
    if (scene->psf.kind == LENSSIM_PSF_PIXEL &&
        (scene->psf.kernel_size < 1 || scene->psf.kernel_size % 2 == 0 ||
         scene->psf.kernel_size > 2 * scene->grid.num_pix + 1))
      return lenssim__fail(err, LENSSIM_ERR_ARG, "psf: a PIXEL kernel needs an odd side no larger than 2 num_pix + 1 (got %d)",
                           scene->psf.kernel_size);
  }
  return LENSSIM_OK;
}

/* Workspace layout: the tracer (64-byte aligned), then 13 arrays of one sub-pixel row
 * (n * supersampling samples: x, y, beta_x, beta_y, surface brightness, 8 of ray state), one
 * row of pixel sums, then the PSF scratch; counted in doubles (the float path uses half). */
static int lenssim__mul_ok(size_t a, size_t b, size_t *out) {
  if (a && b > (size_t)-1 / a) return 0;
  *out = a * b;
  return 1;
}

LENSSIM_API size_t lenssim_render_workspace_bytes(const lenssim_scene *scene) {
  size_t sub_row, arrays, psf, total, bytes;
  int n, ss;
  if (!scene || scene->grid.num_pix < 1 || scene->grid.num_pix > LENSSIM_MAX_PIXELS) return 0;
  n = scene->grid.num_pix;
  ss = scene->grid.supersampling ? scene->grid.supersampling : 1;
  if (ss < 1 || ss > LENSSIM_MAX_SUPERSAMPLING || !(scene->grid.pixel_scale > 0)) return 0;
  if (!lenssim__mul_ok((size_t)n, (size_t)ss, &sub_row)) return 0;
  if (!lenssim__mul_ok(sub_row, 13, &arrays)) return 0;
  psf = lenssim_psf_scratch_doubles(&scene->psf, n, scene->grid.pixel_scale);
  total = arrays + (size_t)n + psf;
  if (total < arrays) return 0;
  if (!lenssim__mul_ok(total, sizeof(double), &bytes)) return 0;
  if (bytes > (size_t)-1 - sizeof(lenssim__tracer) - 128) return 0;
  return bytes + sizeof(lenssim__tracer) + 128;
}

/* Source light entries sorted by redshift, so that one pass of the rays through the planes
 * serves every source plane. */
typedef struct {
  size_t count;
  lenssim__light_prep prep[LENSSIM_MAX_PROFILES];
  double z[LENSSIM_MAX_PROFILES];
  double dc[LENSSIM_MAX_PROFILES]; /* comoving distance to z (multi-plane) */
} lenssim__sources;

typedef struct {
  const lenssim_scene *scene;
  const lenssim__tracer *tracer;
  const lenssim__sources *sources;
  const lenssim__light_prep *lens_light;
  int n, ss;
  double pix;
} lenssim__render_job;

/* Multi-plane rays in float: as lenssim__rays, see lenssim__rays_advance. */
typedef struct {
  float *px, *py, *ax, *ay, *tx, *ty, *dx, *dy;
  size_t next_plane;
  double dc_last;
} lenssim__rays_f;

/* The ray loops as functions of restrict-qualified arrays, so that they vectorise without
 * run-time overlap checks (too many arrays for the compiler to check otherwise). */
LENSSIM__CLONES static void lenssim__rays_start_f(size_t n, const float *LENSSIM__RESTRICT x, const float *LENSSIM__RESTRICT y,
                                  float *LENSSIM__RESTRICT px, float *LENSSIM__RESTRICT py,
                                  float *LENSSIM__RESTRICT ax, float *LENSSIM__RESTRICT ay) {
  size_t i;
  for (i = 0; i < n; i++) { px[i] = 0.0f; py[i] = 0.0f; ax[i] = x[i]; ay[i] = y[i]; }
}

/* carries rays a comoving distance `step` and returns their angles at the plane (1/inv away) */
LENSSIM__CLONES static void lenssim__rays_move_f(size_t n, float step, float inv, float *LENSSIM__RESTRICT px,
                                 float *LENSSIM__RESTRICT py, const float *LENSSIM__RESTRICT ax,
                                 const float *LENSSIM__RESTRICT ay, float *LENSSIM__RESTRICT tx,
                                 float *LENSSIM__RESTRICT ty) {
  size_t i;
  for (i = 0; i < n; i++) {
    px[i] += ax[i] * step;
    py[i] += ay[i] * step;
    tx[i] = px[i] * inv;
    ty[i] = py[i] * inv;
  }
}

/* angles at a plane a comoving distance `step` ahead (1/inv from the observer), rays unmoved */
LENSSIM__CLONES static void lenssim__rays_peek_f(size_t n, float step, float inv, const float *LENSSIM__RESTRICT px,
                                 const float *LENSSIM__RESTRICT py, const float *LENSSIM__RESTRICT ax,
                                 const float *LENSSIM__RESTRICT ay, float *LENSSIM__RESTRICT bx,
                                 float *LENSSIM__RESTRICT by) {
  size_t i;
  for (i = 0; i < n; i++) {
    bx[i] = (px[i] + ax[i] * step) * inv;
    by[i] = (py[i] + ay[i] * step) * inv;
  }
}

LENSSIM__CLONES static void lenssim__rays_advance_f(const lenssim__tracer *t, lenssim__rays_f *r, size_t n, double z_stop,
                                    double dc_stop, float *bx, float *by) {
  size_t k = r->next_plane;
  while (k < t->count && t->z[k] < z_stop) {
    size_t first = k;
    lenssim__rays_move_f(n, (float)(t->dc[k] - r->dc_last), (float)(1.0 / t->dc[k]), r->px, r->py, r->ax, r->ay,
                         r->tx, r->ty);
    /* every profile of the plane sees the same angles, so each can bend the rays at once */
    while (k < t->count && t->z[k] == t->z[first]) {
      lenssim__mass_deflect_sub_f(&t->prep[k], n, r->tx, r->ty, r->ax, r->ay);
      k++;
    }
    r->dc_last = t->dc[first];
  }
  r->next_plane = k;
  /* the last leg, to the source plane, without moving the rays (further source planes go on
   * from the last lens plane): beta = position / distance */
  lenssim__rays_peek_f(n, (float)(dc_stop - r->dc_last), (float)(1.0 / dc_stop), r->px, r->py, r->ax, r->ay, bx, by);
}

/* Surface brightness of one sub-pixel row (m samples at x[], constant y) into sb[]. */
LENSSIM__CLONES static void lenssim__sub_row_f(const lenssim__render_job *job, size_t m, const float *x, const float *y, float *work,
                               float *sb) {
  const lenssim__tracer *t = job->tracer;
  const lenssim__sources *src = job->sources;
  float *bx = work, *by = bx + m;
  size_t i, k;
  for (i = 0; i < m; i++) sb[i] = 0.0f;
  for (k = 0; k < job->scene->num_lens_light; k++) lenssim__light_add_row_f(&job->lens_light[k], m, x, y, sb);
  if (!src->count) return;
  if (!t->multi_plane) {
    for (i = 0; i < m; i++) { bx[i] = x[i]; by[i] = y[i]; }
    for (k = 0; k < t->count; k++) lenssim__mass_deflect_sub_row_f(&t->prep[k], m, x, y, bx, by);
    for (k = 0; k < src->count; k++) lenssim__light_add_f(&src->prep[k], m, bx, by, sb);
  } else {
    lenssim__rays_f rays;
    rays.px = by + m; rays.py = rays.px + m; rays.ax = rays.py + m; rays.ay = rays.ax + m;
    rays.tx = rays.ay + m; rays.ty = rays.tx + m; rays.dx = rays.ty + m; rays.dy = rays.dx + m;
    lenssim__rays_start_f(m, x, y, rays.px, rays.py, rays.ax, rays.ay);
    rays.next_plane = 0;
    rays.dc_last = 0.0;
    for (k = 0; k < src->count; k++) {
      if (k == 0 || src->z[k] != src->z[k - 1]) lenssim__rays_advance_f(t, &rays, m, src->z[k], src->dc[k], bx, by);
      lenssim__light_add_f(&src->prep[k], m, bx, by, sb);
    }
  }
}

static void lenssim__sub_row_d(const lenssim__render_job *job, size_t m, const double *x, const double *y,
                               double *work, double *sb) {
  const lenssim__tracer *t = job->tracer;
  const lenssim__sources *src = job->sources;
  double *bx = work, *by = bx + m;
  size_t i, k;
  for (i = 0; i < m; i++) sb[i] = 0.0;
  for (k = 0; k < job->scene->num_lens_light; k++) lenssim__light_add(&job->lens_light[k], m, x, y, sb);
  if (!src->count) return;
  if (!t->multi_plane) {
    lenssim__shoot_single(t, m, x, y, bx, by);
    for (k = 0; k < src->count; k++) lenssim__light_add(&src->prep[k], m, bx, by, sb);
  } else {
    lenssim__rays rays;
    rays.px = by + m; rays.py = rays.px + m; rays.ax = rays.py + m; rays.ay = rays.ax + m;
    rays.tx = rays.ay + m; rays.ty = rays.tx + m; rays.dx = rays.ty + m; rays.dy = rays.dx + m;
    lenssim__rays_start(&rays, m, x, y);
    for (k = 0; k < src->count; k++) {
      if (k == 0 || src->z[k] != src->z[k - 1]) lenssim__rays_advance(t, &rays, m, src->z[k], bx, by);
      lenssim__light_add(&src->prep[k], m, bx, by, sb);
    }
  }
}

/* Sub-pixel centres: along a row of pixels, x of sample b of pixel j is
 * (j - (n-1)/2) pix + ((b + 1/2)/s - 1/2) pix; rows alike in y. */
static double lenssim__sub_coord(int j, int b, int n, int ss, double pix) {
  return ((double)j - 0.5 * (n - 1)) * pix + (((double)b + 0.5) / ss - 0.5) * pix;
}

LENSSIM__CLONES static void lenssim__render_rows_f(const lenssim__render_job *job, void *arrays, double *image) {
  int n = job->n, ss = job->ss, pi, a, j, b;
  size_t m = (size_t)n * (size_t)ss, i;
  float *x = (float *)arrays, *y = x + m, *sb = y + m, *row_sum = sb + m, *work = row_sum + m;
  double inv_count = job->pix * job->pix / ((double)ss * (double)ss);
  for (j = 0; j < n; j++)
    for (b = 0; b < ss; b++) x[(size_t)j * ss + b] = (float)lenssim__sub_coord(j, b, n, ss, job->pix);
  for (pi = 0; pi < n; pi++) {
    /* sum the sub-rows sample by sample (a plain vector add), then the s samples of each pixel */
    for (a = 0; a < ss; a++) {
      float yv = (float)lenssim__sub_coord(pi, a, n, ss, job->pix);
      for (i = 0; i < m; i++) y[i] = yv;
      lenssim__sub_row_f(job, m, x, y, work, a == 0 ? row_sum : sb);
      if (a > 0)
        for (i = 0; i < m; i++) row_sum[i] += sb[i];
    }
    for (j = 0; j < n; j++) {
      double s = 0.0;
      for (b = 0; b < ss; b++) s += row_sum[(size_t)j * ss + b];
      image[(size_t)pi * n + j] = s * inv_count;
    }
  }
}

static void lenssim__render_rows_d(const lenssim__render_job *job, void *arrays, double *image) {
  int n = job->n, ss = job->ss, pi, a, j, b;
  size_t m = (size_t)n * (size_t)ss, i;
  double *x = (double *)arrays, *y = x + m, *sb = y + m, *work = sb + m, *acc = work + 10 * m;
  double inv_count = job->pix * job->pix / ((double)ss * (double)ss);
  for (j = 0; j < n; j++)
    for (b = 0; b < ss; b++) x[(size_t)j * ss + b] = lenssim__sub_coord(j, b, n, ss, job->pix);
  for (pi = 0; pi < n; pi++) {
    for (j = 0; j < n; j++) acc[j] = 0.0;
    for (a = 0; a < ss; a++) {
      double yv = lenssim__sub_coord(pi, a, n, ss, job->pix);
      for (i = 0; i < m; i++) y[i] = yv;
      lenssim__sub_row_d(job, m, x, y, work, sb);
      for (j = 0; j < n; j++)
        for (b = 0; b < ss; b++) acc[j] += sb[(size_t)j * ss + b];
    }
    for (j = 0; j < n; j++) image[(size_t)pi * n + j] = acc[j] * inv_count;
  }
}

LENSSIM__CLONES LENSSIM_API lenssim_result lenssim_render(const lenssim_scene *scene, double *image, void *workspace,
                                          size_t workspace_bytes, lenssim_error *err) {
  lenssim_result r;
  size_t need, k, m;
  lenssim__tracer *tracer;
  lenssim__sources sources;
  lenssim__light_prep lens_light[LENSSIM_MAX_PROFILES];
  lenssim__render_job job;
  void *owned = NULL, *arrays;
  double *psf_scratch;
  unsigned char *base;

  if ((r = lenssim_scene_check(scene, err)) != LENSSIM_OK) return r;
  if (!image) return lenssim__fail(err, LENSSIM_ERR_ARG, "render: image is NULL");
  need = lenssim_render_workspace_bytes(scene);
  if (!need) return lenssim__fail(err, LENSSIM_ERR_TOO_LARGE, "render: the image is too large");
  if (!workspace) {
    owned = LENSSIM_MALLOC(need);
    if (!owned) return lenssim__fail(err, LENSSIM_ERR_NOMEM, "render: out of memory (%lu bytes)", (unsigned long)need);
    workspace = owned;
  } else if (workspace_bytes < need) {
    return lenssim__fail(err, LENSSIM_ERR_WORKSPACE, "render: workspace of %lu bytes, %lu needed",
                         (unsigned long)workspace_bytes, (unsigned long)need);
  }
  job.scene = scene;
  job.n = scene->grid.num_pix;
  job.ss = scene->grid.supersampling ? scene->grid.supersampling : 1;
  job.pix = scene->grid.pixel_scale;
  m = (size_t)job.n * (size_t)job.ss;

  /* the tracer first (64-byte aligned), then the arrays (64-byte aligned too) */
  base = (unsigned char *)workspace;
  base += (64 - ((uintptr_t)base & 63)) & 63;
  tracer = (lenssim__tracer *)(void *)base;
  base += sizeof(lenssim__tracer);
  base += (64 - ((uintptr_t)base & 63)) & 63;
  arrays = base;
  psf_scratch = (double *)(void *)base + 13 * m + (size_t)job.n;
  lenssim__tracer_init(&scene->lens, tracer);

  for (k = 0; k < scene->num_lens_light; k++) lenssim__light_prepare(&scene->lens_light[k], &lens_light[k]);
  sources.count = scene->num_source_light;
  for (k = 0; k < sources.count; k++) {
    double z = scene->source_light[k].redshift > 0 ? scene->source_light[k].redshift : scene->lens.z_source;
    size_t slot = k;
    lenssim__light_prep p;
    lenssim__light_prepare(&scene->source_light[k], &p);
    /* insertion by redshift, stable */
    while (slot > 0 && sources.z[slot - 1] > z) {
      sources.prep[slot] = sources.prep[slot - 1];
      sources.z[slot] = sources.z[slot - 1];
      slot--;
    }
    sources.prep[slot] = p;
    sources.z[slot] = z;
  }
  for (k = 0; k < sources.count; k++)
    sources.dc[k] = scene->lens.multi_plane ? lenssim_comoving_distance(&scene->lens.cosmology, 0.0, sources.z[k]) : 0.0;
  job.tracer = tracer;
  job.sources = &sources;
  job.lens_light = lens_light;
  if (scene->double_precision) lenssim__render_rows_d(&job, arrays, image);
  else lenssim__render_rows_f(&job, arrays, image);
  r = lenssim_psf_convolve(&scene->psf, job.n, job.pix, image, psf_scratch, err);
  if (owned) LENSSIM_FREE(owned);
  return r;
}

/* ---- random numbers ------------------------------------------------------------------------- */
static uint64_t lenssim__splitmix64(uint64_t *state) {
  uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

LENSSIM_API void lenssim_rng_seed(lenssim_rng *rng, uint64_t seed) {
  int i;
  for (i = 0; i < 4; i++) rng->s[i] = lenssim__splitmix64(&seed);
}

static uint64_t lenssim__rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

/* xoshiro256** (Blackman & Vigna 2018) */
LENSSIM_API uint64_t lenssim_rng_next(lenssim_rng *rng) {
  uint64_t *s = rng->s;
  uint64_t result = lenssim__rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
  s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3];
  s[2] ^= t;
  s[3] = lenssim__rotl(s[3], 45);
  return result;
}

LENSSIM_API double lenssim_rng_uniform(lenssim_rng *rng) {
  return (double)(lenssim_rng_next(rng) >> 11) * (1.0 / 9007199254740992.0);
}

/* Two independent normal deviates by Marsaglia's polar method (one log, one sqrt, no sin/cos). */
static void lenssim__normal_pair(lenssim_rng *rng, double *z0, double *z1) {
  double u, v, s, f;
  do {
    u = 2.0 * lenssim_rng_uniform(rng) - 1.0;
    v = 2.0 * lenssim_rng_uniform(rng) - 1.0;
    s = u * u + v * v;
  } while (s >= 1.0 || s == 0.0);
  f = sqrt(-2.0 * lenssim__log(s) / s);
  *z0 = u * f;
  *z1 = v * f;
}

/* One deviate; the second of the pair is discarded so that the state alone determines the
 * sequence. */
LENSSIM_API double lenssim_rng_normal(lenssim_rng *rng) {
  double z0, z1;
  lenssim__normal_pair(rng, &z0, &z1);
  return z0;
}

/* ln(k!) for whole k >= 0: a sum for small k, Stirling's series with three terms above (error
 * below 1e-12 for k >= 15). */
static double lenssim__log_factorial(double k) {
  if (k < 15.0) {
    double sum = 0.0, i;
    for (i = 2.0; i <= k; i += 1.0) sum += lenssim__log(i);
    return sum;
  } else {
    double x = k + 1.0, ix = 1.0 / x, ix2 = ix * ix;
    return (x - 0.5) * lenssim__log(x) - x + 0.91893853320467274178 +
           ix * (1.0 / 12.0 - ix2 * (1.0 / 360.0 - ix2 / 1260.0));
  }
}

/* Poisson: products of uniforms for small means; PTRS transformed rejection (Hoermann 1993,
 * "The transformed rejection method for generating Poisson random variables") otherwise, with
 * the constants computed once per mean by the caller when many share it. */
LENSSIM_API double lenssim_rng_poisson(lenssim_rng *rng, double mean) {
  if (!(mean > 0)) return 0.0;
  if (!(mean <= 281474976710656.0)) {
    /* beyond 2^48 the skewness (mean^-1/2 < 6e-8) is below double resolution of the draw: a
     * normal deviate serves; infinities pass through */
    if (mean - mean != 0.0) return mean;
    return floor(mean + sqrt(mean) * lenssim_rng_normal(rng) + 0.5);
  }
  if (mean < 10.0) {
    double limit = lenssim__exp(-mean), prod = lenssim_rng_uniform(rng);
    double k = 0.0;
    while (prod > limit) { prod *= lenssim_rng_uniform(rng); k += 1.0; }
    return k;
  } else {
    /* only b, a and vr are needed by the quick acceptance that takes most draws; the rest is
     * computed when a draw falls through to the exact test */
    double b = 0.931 + 2.53 * sqrt(mean), a = -0.059 + 0.02483 * b, two_a = 2.0 * a;
    double vr = 0.9277 - 3.6224 / (b - 2.0), loglam = 0.0, log_inv_alpha = 0.0;
    int slow_ready = 0;
    for (;;) {
      double u = lenssim_rng_uniform(rng) - 0.5, v = lenssim_rng_uniform(rng), us = 0.5 - fabs(u), k;
      k = floor((two_a / us + b) * u + mean + 0.43);
      if (us >= 0.07 && v <= vr) return k;
      if (k < 0 || (us < 0.013 && v > us)) continue;
      if (!slow_ready) {
        loglam = lenssim__log(mean);
        log_inv_alpha = lenssim__log(1.1239 + 1.1328 / (b - 3.4));
        slow_ready = 1;
      }
      if (lenssim__log(v) + log_inv_alpha - lenssim__log(a / (us * us) + b) <= -mean + k * loglam - lenssim__log_factorial(k))
        return k;
    }
  }
}

/* ---- bands and noise ------------------------------------------------------------------------ */
/* Survey figures: Euclid VIS from lenstronomy's Euclid configuration (565 s x 4, sky 22.35,
 * zero point 24.0, read noise 4.2 e-, gain 3.1, FWHM 0.16"); NISP Y/J/H (0.3"/px, 4 x 87.2 s) and
 * HSC g/r/i (0.168"/px, Wide-survey depths) from the public instrument summaries, rounded; an
 * HST WFC3/IR F160W-like band as lenstronomy's HST configuration. */
static const lenssim_band lenssim__bands[] = {
  /* name        pix    zp     exp     nexp sky    read gain psf                  fwhm  beta */
  {"VIS",        0.1,   24.0,  565.0,  4,   22.35, 4.2, 3.1, LENSSIM_PSF_MOFFAT,   0.16, 2.5},
  {"NISP_Y",     0.3,   25.04, 87.2,   4,   22.0,  6.1, 2.0, LENSSIM_PSF_MOFFAT,   0.33, 2.5},
  {"NISP_J",     0.3,   25.26, 87.2,   4,   21.9,  6.1, 2.0, LENSSIM_PSF_MOFFAT,   0.35, 2.5},
  {"NISP_H",     0.3,   25.21, 87.2,   4,   21.8,  6.1, 2.0, LENSSIM_PSF_MOFFAT,   0.36, 2.5},
  {"HSC_g",      0.168, 27.0,  150.0,  4,   22.28, 4.5, 3.0, LENSSIM_PSF_MOFFAT,   0.77, 3.5},
  {"HSC_r",      0.168, 27.0,  150.0,  4,   21.71, 4.5, 3.0, LENSSIM_PSF_MOFFAT,   0.76, 3.5},
  {"HSC_i",      0.168, 27.0,  200.0,  6,   20.85, 4.5, 3.0, LENSSIM_PSF_MOFFAT,   0.58, 3.5},
  {"HST_F160W",  0.08,  25.96, 5400.0, 1,   22.3,  4.0, 2.5, LENSSIM_PSF_GAUSSIAN, 0.08, 0.0},
  /* lens-finding challenge 1, space-based (docs/challenge.md): GLAMER's Euclid_VIS (zero point of
   * a 119 cm aperture at 30 % throughput, 3 x 600 s, 5 e-, no quantisation, Gaussian 0.18"), with
   * the sky set so that the blank-sky sigma is the one measured on the challenge's cutouts */
  {"CHALLENGE1_VIS", 0.1, 25.655, 600.0, 3,   21.89, 5.0, 0.0, LENSSIM_PSF_GAUSSIAN, 0.18, 0.0},
};

LENSSIM_API size_t lenssim_band_count(void) { return sizeof lenssim__bands / sizeof lenssim__bands[0]; }
LENSSIM_API const lenssim_band *lenssim_band_at(size_t i) { return i < lenssim_band_count() ? &lenssim__bands[i] : NULL; }

static int lenssim__iequal(const char *a, const char *b) {
  for (; *a && *b; a++, b++) {
    int ca = (*a >= 'A' && *a <= 'Z') ? *a + 32 : *a, cb = (*b >= 'A' && *b <= 'Z') ? *b + 32 : *b;
    if (ca != cb) return 0;
  }
  return *a == *b;
}

LENSSIM_API const lenssim_band *lenssim_band_find(const char *name) {
  size_t i;
  if (!name) return NULL;
  for (i = 0; i < lenssim_band_count(); i++)
    if (lenssim__iequal(name, lenssim__bands[i].name)) return &lenssim__bands[i];
  return NULL;
}

LENSSIM_API double lenssim_magnitude_to_counts(double mag, double zp) { return pow(10.0, -0.4 * (mag - zp)); }

LENSSIM_API lenssim_noise lenssim_noise_from_band(const lenssim_band *band) {
  lenssim_noise nz;
  memset(&nz, 0, sizeof nz);
  if (!band) return nz;
  nz.num_exposures = band->num_exposures > 0 ? band->num_exposures : 1;
  nz.exposure_time = band->exposure_time * nz.num_exposures;
  nz.sky_rate = lenssim_magnitude_to_counts(band->sky_brightness, band->zero_point) * band->pixel_scale * band->pixel_scale;
  nz.read_noise = band->read_noise;
  nz.ccd_gain = band->ccd_gain;
  return nz;
}

/* The band's noise for pixels of pixel_scale: the sky per pixel follows the pixel area. */
static lenssim_noise lenssim__band_noise_at(const lenssim_band *band, double pixel_scale) {
  lenssim_noise nz = lenssim_noise_from_band(band);
  nz.sky_rate *= (pixel_scale * pixel_scale) / (band->pixel_scale * band->pixel_scale);
  return nz;
}

static void lenssim__band_psf(const lenssim_band *band, lenssim_psf *psf) {
  psf->kind = band->psf_kind;
  psf->fwhm = band->psf_fwhm;
  psf->moffat_beta = band->moffat_beta;
}

LENSSIM_API lenssim_result lenssim_band_observe(const lenssim_band *band, lenssim_scene *scene, int keep_psf,
                                                lenssim_noise *noise, lenssim_error *err) {
  if (!band || !scene) return lenssim__fail(err, LENSSIM_ERR_ARG, "band_observe: NULL %s", band ? "scene" : "band");
  if (!(band->pixel_scale > 0) || !(scene->grid.pixel_scale > 0))
    return lenssim__fail(err, LENSSIM_ERR_RANGE, "band_observe: pixel_scale %g (band %s) and %g (scene) must be positive",
                         band->pixel_scale, band->name ? band->name : "?", scene->grid.pixel_scale);
  if (!keep_psf) lenssim__band_psf(band, &scene->psf);
  if (noise) *noise = lenssim__band_noise_at(band, scene->grid.pixel_scale);
  return LENSSIM_OK;
}

LENSSIM_API lenssim_result lenssim_render_json(const char *text, size_t len, const lenssim_band *band, uint64_t seed,
                                               int use_double, float *image, size_t cap, size_t *side, lenssim_error *err) {
  lenssim_json_scene sc;
  lenssim_noise noise;
  lenssim_result r;
  double *pixels = NULL;
  size_t count, k;
  if (!side) return lenssim__fail(err, LENSSIM_ERR_ARG, "render_json: NULL side");
  if ((r = lenssim_scene_from_json(text, len, &sc, err)) != LENSSIM_OK) return r;
  sc.scene.double_precision = use_double;
  *side = (size_t)sc.scene.grid.num_pix;
  count = *side * *side; /* num_pix <= LENSSIM_MAX_PIXELS (lenssim_scene_check): no overflow */
  if (image && cap < count)
    r = lenssim__fail(err, LENSSIM_ERR_RANGE, "render_json: the image holds %lu floats, the scene needs %lu x %lu",
                      (unsigned long)cap, (unsigned long)*side, (unsigned long)*side);
  if (r == LENSSIM_OK && image && !(pixels = (double *)LENSSIM_MALLOC(count * sizeof *pixels)))
    r = lenssim__fail(err, LENSSIM_ERR_NOMEM, "render_json: out of memory for a %lu x %lu image", (unsigned long)*side,
                      (unsigned long)*side);
  if (r == LENSSIM_OK && image && band) r = lenssim_band_observe(band, &sc.scene, sc.has_psf, &noise, err);
  if (r == LENSSIM_OK && image) r = lenssim_render(&sc.scene, pixels, NULL, 0, err);
  if (r == LENSSIM_OK && image) {
    if (band) {
      lenssim_rng rng;
      lenssim_rng_seed(&rng, seed);
      lenssim_add_noise(&noise, pixels, count, &rng);
    }
    for (k = 0; k < count; k++) image[k] = (float)pixels[k];
  }
  if (pixels) LENSSIM_FREE(pixels);
  lenssim_json_scene_free(&sc);
  return r;
}

/* cos and sin of the angle (quadrant + 1/2 + f) pi/2, f in [-1/2, 1/2): Taylor series on
 * |phi| <= pi/4 (error < 1e-15), then a quarter-turn rotation by the quadrant; branch-free. */
LENSSIM__INLINE void lenssim__quarter_sincos(double quadrant, double f, double *c, double *s) {
  /* cos and sin as polynomials in -phi^2 */
  static const double cos_taylor[8] = {1.0 / 87178291200.0, 1.0 / 479001600.0, 1.0 / 3628800.0, 1.0 / 40320.0,
                                       1.0 / 720.0,          1.0 / 24.0,        0.5,              1.0};
  static const double sin_taylor[7] = {1.0 / 6227020800.0, 1.0 / 39916800.0, 1.0 / 362880.0, 1.0 / 5040.0,
                                       1.0 / 120.0,        1.0 / 6.0,        1.0};
  double phi = f * 1.57079632679489661923, p2 = phi * phi, c0, s0;
  c0 = lenssim__horner(cos_taylor, 8, -p2);
  s0 = phi * lenssim__horner(sin_taylor, 7, -p2);
  /* rotate (c0, s0) by quadrant quarter turns: (c, s) -> (-s, c) per turn */
  *c = quadrant == 0.0 ? c0 : (quadrant == 1.0 ? -s0 : (quadrant == 2.0 ? -c0 : s0));
  *s = quadrant == 0.0 ? s0 : (quadrant == 1.0 ? c0 : (quadrant == 2.0 ? -s0 : -c0));
}

/* float cos and sin for the read-noise Box-Muller pairs: as lenssim__quarter_sincos, Taylor to
 * phi^8 / phi^9 (error < 4e-8). */
LENSSIM__INLINE void lenssim__quarter_sincosf(float quadrant, float f, float *c, float *s) {
  static const float cos_taylor[5] = {1.0f / 40320.0f, 1.0f / 720.0f, 1.0f / 24.0f, 0.5f, 1.0f};
  static const float sin_taylor[5] = {1.0f / 362880.0f, 1.0f / 5040.0f, 1.0f / 120.0f, 1.0f / 6.0f, 1.0f};
  float phi = f * 1.57079633f, p2 = phi * phi, c0, s0;
  c0 = lenssim__hornerf(cos_taylor, 5, -p2);
  s0 = phi * lenssim__hornerf(sin_taylor, 5, -p2);
  *c = quadrant == 0.0f ? c0 : (quadrant == 1.0f ? -s0 : (quadrant == 2.0f ? -c0 : s0));
  *s = quadrant == 0.0f ? s0 : (quadrant == 1.0f ? c0 : (quadrant == 2.0f ? -s0 : -c0));
}

/* ln(k!) for whole k >= 0 without branches: Stirling's series for ln Gamma(k + 9) (error below
 * 1e-11), less ln((k+1)(k+2)...(k+8)). */
LENSSIM__INLINE double lenssim__log_factorial_v(double k) {
  double x = k + 9.0, ix = 1.0 / x, ix2 = ix * ix, prod;
  double lg = (x - 0.5) * lenssim__log(x) - x + 0.91893853320467274178 + ix * (1.0 / 12.0 - ix2 * (1.0 / 360.0 - ix2 / 1260.0));
  prod = (k + 1.0) * (k + 2.0) * (k + 3.0) * (k + 4.0) * (k + 5.0) * (k + 6.0) * (k + 7.0) * (k + 8.0);
  return lg - lenssim__log(prod);
}

/* floor(x) for |x| < 2^51 without a library call: round to nearest through the 1.5 2^52
 * shifter, then step down where that rounded up. */
LENSSIM__INLINE double lenssim__floor(double x) {
  double r = (x + 6755399441055744.0) - 6755399441055744.0;
  return r > x ? r - 1.0 : r;
}

/* Two uniforms in (0, 1) from one 64-bit draw: 32 bits each (offset by half a step, so neither
 * is 0). Plenty for noise: Box-Muller then reaches 6.6 sigma. */
LENSSIM__INLINE void lenssim__uniform_pair(lenssim_rng *rng, double *a, double *b) {
  uint64_t r = lenssim_rng_next(rng);
  *a = ((double)(r >> 32) + 0.5) * (1.0 / 4294967296.0);
  *b = ((double)(r & 0xffffffffu) + 0.5) * (1.0 / 4294967296.0);
}

/* One PTRS trial (Hoermann 1993) for a mean l >= 10 from uniforms u - 1/2 = uc and v: the
 * candidate in *k, and 1 if it is accepted (quick or exact test), 0 if the trial is rejected. */
LENSSIM__INLINE double lenssim__ptrs_trial(double l, double uc, double v, double *k) {
  double b = 0.931 + 2.53 * lenssim__sqrt(l), a = -0.059 + 0.02483 * b;
  double inv_alpha = 1.1239 + 1.1328 / (b - 3.4), vr = 0.9277 - 3.6224 / (b - 2.0);
  double us = 0.5 - fabs(uc), cand, k0, lhs, rhs, quick, hopeless;
  cand = lenssim__floor((2.0 * a / us + b) * uc + l + 0.43);
  quick = (us >= 0.07 ? 1.0 : 0.0) * (v <= vr ? 1.0 : 0.0);
  hopeless = (cand < 0 ? 1.0 : 0.0) + (us < 0.013 ? 1.0 : 0.0) * (v > us ? 1.0 : 0.0);
  k0 = cand > 0 ? cand : 0;
  lhs = lenssim__log(v * inv_alpha / (a / (us * us) + b));
  rhs = -l + k0 * lenssim__log(l) - lenssim__log_factorial_v(k0);
  *k = k0;
  return quick > 0 ? 1.0 : ((hopeless == 0.0 && lhs <= rhs) ? 1.0 : 0.0);
}

/* Noise for a block of pixels. The random numbers are drawn in a fixed order (so the result does
 * not depend on the vector width), and the arithmetic runs in loops the compiler vectorises:
 *  - read noise: Box-Muller pairs (both the cosine and the sine half);
 *  - Poisson: a first PTRS trial for every pixel with the quick acceptance, then the exact test
 *    for the third of the trials that need it, gathered into a list; the ~15% of pixels whose
 *    trial was rejected get a second trial, again as a list; what remains (about 2%), and all
 *    means below 10, are drawn one by one with lenssim_rng_poisson.
 * Means are capped at 2^48 electrons. */
#define LENSSIM__NOISE_BLOCK 256
LENSSIM__CLONES static void lenssim__add_noise(const lenssim_noise *nz, double *image, size_t count, lenssim_rng *rng) {
  double pu[LENSSIM__NOISE_BLOCK], pv[LENSSIM__NOISE_BLOCK], gu[LENSSIM__NOISE_BLOCK / 2], gw[LENSSIM__NOISE_BLOCK / 2];
  double gauss_c[LENSSIM__NOISE_BLOCK / 2], gauss_s[LENSSIM__NOISE_BLOCK / 2];
  double lam[LENSSIM__NOISE_BLOCK], kk[LENSSIM__NOISE_BLOCK], quick[LENSSIM__NOISE_BLOCK];
  double c_lam[LENSSIM__NOISE_BLOCK], c_u[LENSSIM__NOISE_BLOCK], c_v[LENSSIM__NOISE_BLOCK], c_k[LENSSIM__NOISE_BLOCK];
  double c_ok[LENSSIM__NOISE_BLOCK];
  size_t c_idx[LENSSIM__NOISE_BLOCK];
  int nexp = nz->num_exposures > 0 ? nz->num_exposures : 1, round;
  double t = nz->exposure_time, sky_e = nz->sky_rate * t, read_sigma = nz->read_noise * sqrt((double)nexp);
  double gain = nz->ccd_gain, inv_gain = gain > 0 ? 1.0 / gain : 0.0, inv_t = t > 0 ? 1.0 / t : 0.0;
  const double max_mean = 281474976710656.0;
  size_t start, i, m, pairs, nc;
  for (start = 0; start < count; start += m) {
    m = count - start < LENSSIM__NOISE_BLOCK ? count - start : LENSSIM__NOISE_BLOCK;
    pairs = (m + 1) / 2;
    for (i = 0; i < m; i++) lenssim__uniform_pair(rng, &pu[i], &pv[i]);
    for (i = 0; i < pairs; i++) lenssim__uniform_pair(rng, &gu[i], &gw[i]);
    /* read noise needs no double precision: Box-Muller in float, twice the lanes */
    for (i = 0; i < pairs; i++) {
      float w = (float)(4.0 * gw[i]), quadrant = (float)(int)w, c, s, radius; /* w >= 0: truncation is floor */
      radius = lenssim__sqrtf(-2.0f * lenssim__logf((float)gu[i]));
      lenssim__quarter_sincosf(quadrant, w - quadrant - 0.5f, &c, &s);
      gauss_c[i] = radius * c;
      gauss_s[i] = radius * s;
    }
    if (!(t > 0)) {
      /* no exposure: only the read noise, in counts/s of a one-second exposure */
      for (i = 0; i < m; i++) image[start + i] += read_sigma * ((i & 1) ? gauss_s[i / 2] : gauss_c[i / 2]);
      continue;
    }
    /* first trial, quick acceptance only */
    for (i = 0; i < m; i++) {
      double mean = image[start + i] * t + sky_e, l, b, a, vr, u, us;
      l = mean > 10.0 ? mean : 10.0;
      l = l < max_mean ? l : max_mean;
      b = 0.931 + 2.53 * lenssim__sqrt(l);
      a = -0.059 + 0.02483 * b;
      vr = 0.9277 - 3.6224 / (b - 2.0);
      u = pu[i] - 0.5;
      us = 0.5 - fabs(u);
      kk[i] = lenssim__floor((2.0 * a / us + b) * u + l + 0.43);
      lam[i] = (mean >= 10.0 && mean < max_mean) ? l : 0.0; /* 0: drawn one by one */
      quick[i] = (us >= 0.07 ? 1.0 : 0.0) * (pv[i] <= vr ? 1.0 : 0.0);
    }
    /* first trial, exact test; then a second trial for the rejected. Lists are built without
     * branches (write always, advance when the entry belongs). */
    nc = 0;
    for (i = 0; i < m; i++) {
      c_idx[nc] = i; c_lam[nc] = lam[i]; c_u[nc] = pu[i] - 0.5; c_v[nc] = pv[i];
      nc += (lam[i] > 0 && quick[i] == 0.0) ? 1 : 0;
    }
    for (round = 0; round < 2; round++) {
      size_t kept = 0;
      for (i = 0; i < nc; i++) c_ok[i] = lenssim__ptrs_trial(c_lam[i], c_u[i], c_v[i], &c_k[i]);
      for (i = 0; i < nc; i++) kk[c_idx[i]] = c_k[i];
      /* keep the rejected for the next trial (with fresh uniforms) or for the one-by-one draw */
      for (i = 0; i < nc; i++) {
        c_idx[kept] = c_idx[i]; c_lam[kept] = c_lam[i];
        kept += c_ok[i] == 0.0 ? 1 : 0;
      }
      nc = kept;
      if (round == 0)
        for (i = 0; i < nc; i++) { lenssim__uniform_pair(rng, &c_u[i], &c_v[i]); c_u[i] -= 0.5; }
    }
    for (i = 0; i < nc; i++) lam[c_idx[i]] = 0.0;
    for (i = 0; i < m; i++)
      if (lam[i] == 0.0) {
        double mean = image[start + i] * t + sky_e;
        kk[i] = lenssim_rng_poisson(rng, mean > 0 ? mean : 0.0);
      }
    /* electrons + read noise, whole ADU, sky subtracted, back to counts/s; pixel pairs share a
     * Box-Muller draw */
    for (i = 0; i + 1 < m; i += 2) {
      double e0 = kk[i] + read_sigma * gauss_c[i / 2], e1 = kk[i + 1] + read_sigma * gauss_s[i / 2];
      if (gain > 0) {
        e0 = lenssim__floor(e0 * inv_gain + 0.5) * gain;
        e1 = lenssim__floor(e1 * inv_gain + 0.5) * gain;
      }
      image[start + i] = (e0 - sky_e) * inv_t;
      image[start + i + 1] = (e1 - sky_e) * inv_t;
    }
    if (m & 1) {
      double e = kk[m - 1] + read_sigma * gauss_c[(m - 1) / 2];
      if (gain > 0) e = lenssim__floor(e * inv_gain + 0.5) * gain;
      image[start + m - 1] = (e - sky_e) * inv_t;
    }
  }
}

LENSSIM_API void lenssim_add_noise(const lenssim_noise *nz, double *image, size_t count, lenssim_rng *rng) {
  if (!nz || !image || !rng) return; /* nothing to add noise with or to */
  lenssim__add_noise(nz, image, count, rng);
}

/* log Gamma(x). lgamma() also stores the sign in the global signgam, so two threads simulating at
 * once race on it (the value is not affected, but it is a data race all the same, and
 * ThreadSanitizer reports it). glibc's lgamma_r gives the same value, bit for bit, without the
 * global (declared here when the feature macros in force hide it); elsewhere lgamma stays. */
#if defined(__GLIBC__)
#if !defined(__USE_MISC)
extern double lgamma_r(double, int *);
#endif
static double lenssim__lgamma(double x) {
  int sign;
  return lgamma_r(x, &sign);
}
#else
static double lenssim__lgamma(double x) { return lgamma(x); }
#endif

/* Total flux of a Sersic profile with amp = 1: 2 pi n R^2 e^{b} b^{-2n} Gamma(2n) (the
 * product-average radius keeps the area of ellipses, so this holds for SERSIC_ELLIPSE). */
LENSSIM_API double lenssim_sersic_amp_from_counts(double counts, double R_sersic, double n_sersic) {
  double bn = 1.9992 * n_sersic - 0.3271, flux1;
  if (bn < 1e-5) bn = 1e-5;
  flux1 = 2.0 * LENSSIM__PI * n_sersic * R_sersic * R_sersic * exp(bn + lenssim__lgamma(2.0 * n_sersic) - 2.0 * n_sersic * log(bn));
  return counts / flux1;
}

LENSSIM_API double lenssim_sersic_amp_from_magnitude(double mag, double zp, double R_sersic, double n_sersic) {
  return lenssim_sersic_amp_from_counts(lenssim_magnitude_to_counts(mag, zp), R_sersic, n_sersic);
}

/* ---- clumpy sources ------------------------------------------------------------------------- */
/* Star-forming galaxies at z ~ 1-3 look like a smooth disc with a few bright compact knots
 * (Elmegreen et al. 2007; Guo et al. 2015). The disc keeps (1 - clump_fraction) of the flux; the
 * clumps share the rest with random weights, sit at radii drawn from an exponential disc
 * (scale 0.6 R_sersic, capped at 2 R_sersic) along the disc's ellipse, and are round Gaussians. */
LENSSIM_API size_t lenssim_clumpy_source(const lenssim_clumpy *pr, lenssim_rng *rng, lenssim_light *out,
                                         size_t max_out) {
  int nc = pr->num_clumps > 0 ? pr->num_clumps : 5, i;
  double frac = pr->clump_fraction > 0 ? pr->clump_fraction : 0.3;
  double sigma = pr->clump_sigma > 0 ? pr->clump_sigma : 0.15 * pr->R_sersic;
  double n = pr->n_sersic > 0 ? pr->n_sersic : 1.0, bn, total, weights[LENSSIM_MAX_PROFILES], wsum = 0.0;
  double phi, q, cs, sn;
  if (frac > 1.0) frac = 1.0;
  if ((size_t)nc + 1 > max_out || nc + 1 > LENSSIM_MAX_PROFILES) return 0;
  bn = 1.9992 * n - 0.3271;
  if (bn < 1e-5) bn = 1e-5;
  total = pr->amp / lenssim_sersic_amp_from_counts(1.0, pr->R_sersic, n);
  lenssim__phi_q(pr->e1, pr->e2, &phi, &q);
  cs = cos(phi); sn = sin(phi);
  memset(out, 0, sizeof *out * (size_t)(nc + 1));
  out[0].kind = LENSSIM_LIGHT_SERSIC_ELLIPSE;
  out[0].amp = pr->amp * (1.0 - frac);
  out[0].R_sersic = pr->R_sersic;
  out[0].n_sersic = n;
  out[0].e1 = pr->e1; out[0].e2 = pr->e2;
  out[0].center_x = pr->center_x; out[0].center_y = pr->center_y;
  out[0].redshift = pr->redshift;
  for (i = 0; i < nc; i++) { weights[i] = 0.2 + lenssim_rng_uniform(rng); wsum += weights[i]; }
  for (i = 0; i < nc; i++) {
    double rad = -0.6 * pr->R_sersic * log(1.0 - lenssim_rng_uniform(rng)), ang = 2.0 * LENSSIM__PI * lenssim_rng_uniform(rng);
    double u, v;
    if (rad > 2.0 * pr->R_sersic) rad = 2.0 * pr->R_sersic;
    /* a point on the ellipse R = rad in the disc's frame (x' = rad cos / sqrt(q), y' = rad sin sqrt(q)) */
    u = rad * cos(ang) / sqrt(q);
    v = rad * sin(ang) * sqrt(q);
    out[i + 1].kind = LENSSIM_LIGHT_GAUSSIAN;
    out[i + 1].amp = total * frac * weights[i] / wsum;
    out[i + 1].sigma = sigma * (0.6 + 0.8 * lenssim_rng_uniform(rng));
    out[i + 1].center_x = pr->center_x + u * cs - v * sn;
    out[i + 1].center_y = pr->center_y + u * sn + v * cs;
    out[i + 1].redshift = pr->redshift;
  }
  return (size_t)nc + 1;
}

/* ---- populations and labelled datasets ------------------------------------------------------ */
#define LENSSIM__ARCSEC_PER_RAD 206264.80624709636
#define LENSSIM__ZTAB_STEP 0.01
#define LENSSIM__ZTAB_N 601
#define LENSSIM__ICDF_N 257
#define LENSSIM__MAX_TRIES 1000
/* two source planes that must both pass the selection take ~300 draws on average */
#define LENSSIM__MAX_TRIES_TWO_PLANES 10000
#define LENSSIM__COUNT_GRID 100

LENSSIM_API double lenssim_einstein_radius_sis(const lenssim_cosmology *c, double sigma_v, double z_lens, double z_source) {
  double ds, dls, v;
  if (!(z_source > z_lens) || !(z_lens >= 0)) return 0.0;
  ds = lenssim_angular_diameter_distance(c, 0.0, z_source);
  dls = lenssim_angular_diameter_distance(c, z_lens, z_source);
  v = sigma_v / LENSSIM__C_KM_S;
  return 4.0 * LENSSIM__PI * v * v * dls / ds * LENSSIM__ARCSEC_PER_RAD;
}

LENSSIM_API double lenssim_velocity_dispersion_function(double sigma_v) {
  const double phi_star = 8e-3, sigma_star = 161.0, alpha = 2.32, beta = 2.67;
  double x;
  if (!(sigma_v > 0)) return 0.0;
  x = sigma_v / sigma_star;
  return phi_star * pow(x, alpha) * exp(-pow(x, beta)) * beta / tgamma(alpha / beta) / sigma_v;
}

static const char *const lenssim__preset_names[LENSSIM_PRESET_COUNT] = {
  "euclid-lensfinding", "euclid-compound", "deeplense-substructure", "ensai-modelling"};
static const char *const lenssim__layout_names[LENSSIM_LAYOUT_COUNT] = {
  "default", "ou66", "ou200", "hsc", "hst192", "hst150", "challenge1-vis"};
/* A preset's classes, label 0 first; the dataset's class count follows from this table. */
static const char *const lenssim__preset_classes[LENSSIM_PRESET_COUNT] = {
  "non-lens,lens", "non-lens,lens", "no_substructure,subhalos,vortex", "non-lens,lens"};
static const char *const lenssim__kind_names[LENSSIM_KIND_COUNT] = {
  "empty", "star", "elliptical", "disc", "spiral", "edge_on_disc", "pair", "ring_galaxy", "merger",
  "galaxy_galaxy", "compound_arc", "double_ring", "no_substructure", "subhalos", "vortex"};

/* the index of name in names[0..count) ignoring case, or -1 */
static int lenssim__name_index(const char *const *names, int count, const char *name) {
  int i;
  for (i = 0; name && i < count; i++)
    if (lenssim__iequal(name, names[i])) return i;
  return -1;
}

LENSSIM_API const char *lenssim_preset_name(lenssim_preset p) {
  return lenssim__name_of(lenssim__preset_names, LENSSIM_PRESET_COUNT, (int)p);
}
LENSSIM_API int lenssim_preset_from_name(const char *name) {
  return lenssim__name_index(lenssim__preset_names, LENSSIM_PRESET_COUNT, name);
}
LENSSIM_API const char *lenssim_layout_name(lenssim_layout l) {
  return lenssim__name_of(lenssim__layout_names, LENSSIM_LAYOUT_COUNT, (int)l);
}
LENSSIM_API int lenssim_layout_from_name(const char *name) {
  return lenssim__name_index(lenssim__layout_names, LENSSIM_LAYOUT_COUNT, name);
}
LENSSIM_API const char *lenssim_kind_name(lenssim_kind k) {
  return lenssim__name_of(lenssim__kind_names, LENSSIM_KIND_COUNT, (int)k);
}
LENSSIM_API const char *lenssim_preset_class_names(lenssim_preset p) {
  return lenssim__name_of(lenssim__preset_classes, LENSSIM_PRESET_COUNT, (int)p);
}

/* ---- labels.csv ------------------------------------------------------------------------------
 * The columns after `index`, each a field of lenssim_label and how it prints (INT %d, REAL
 * %.6g, KIND its name): the header and the rows both come from this list. */
#define LENSSIM__LABEL_COLUMNS(X)                                                                                  \
  X(label, INT) X(kind, KIND) X(theta_E, REAL) X(theta_E2, REAL) X(e1, REAL) X(e2, REAL) X(center_x, REAL)         \
  X(center_y, REAL) X(gamma1, REAL) X(gamma2, REAL) X(sigma_v, REAL) X(z_lens, REAL) X(z_lens2, REAL)              \
  X(z_source, REAL) X(z_source2, REAL) X(source_x, REAL) X(source_y, REAL) X(source_R, REAL) X(source_n, REAL)     \
  X(source_clumpy, INT) X(magnification, REAL) X(magnification2, REAL) X(n_images, INT) X(n_images2, INT)         \
  X(arc_snr, REAL) X(mag_source, REAL) X(mag_source2, REAL) X(mag_lens, REAL) X(n_subhalos, INT)                  \
  X(substructure_mass, REAL) X(vortex_length, REAL) X(vortex_angle, REAL) X(vortex_density, REAL) X(attempts, INT)   \
  X(arc_snr1, REAL) X(arc_snr2, REAL) X(n_neighbours, INT)

#define LENSSIM__COLUMN_NAME(field, type) "," #field
LENSSIM_API const char *lenssim_label_csv_header(void) {
  return "index" LENSSIM__LABEL_COLUMNS(LENSSIM__COLUMN_NAME) "\n";
}
#undef LENSSIM__COLUMN_NAME

/* Text appended to a caller's buffer; len counts what was wanted, so len >= cap means too small. */
typedef struct { char *buf; size_t cap, len; } lenssim__text;

static void lenssim__text_add(lenssim__text *t, const char *fmt, ...) {
  va_list ap;
  int n;
  va_start(ap, fmt);
  n = vsnprintf(t->len < t->cap ? t->buf + t->len : NULL, t->len < t->cap ? t->cap - t->len : 0, fmt, ap);
  va_end(ap);
  if (n > 0) t->len += (size_t)n;
}

/* A number as %.6g with a '.' for the decimal point, whatever LC_NUMERIC says. */
static void lenssim__text_add_real(lenssim__text *t, double v) {
  const char *dot = localeconv()->decimal_point;
  size_t start = t->len, k;
  lenssim__text_add(t, ",%.6g", v);
  if (dot[0] == '.' || dot[0] == 0 || dot[1] != 0) return;
  for (k = start; k < t->len && k < t->cap; k++)
    if (t->buf[k] == dot[0]) t->buf[k] = '.';
}

#define LENSSIM__COLUMN_INT(v) lenssim__text_add(&t, ",%d", (v))
#define LENSSIM__COLUMN_REAL(v) lenssim__text_add_real(&t, (v))
#define LENSSIM__COLUMN_KIND(v) lenssim__text_add(&t, ",%s", lenssim_kind_name(v))
#define LENSSIM__COLUMN_ROW(field, type) LENSSIM__COLUMN_##type(label->field);
LENSSIM_API size_t lenssim_label_csv_row(const lenssim_label *label, uint64_t index, char *buf, size_t cap,
                                         lenssim_error *err) {
  lenssim__text t;
  char num[24];
  if (buf && cap) buf[0] = 0;
  if (!label || !buf) {
    lenssim__fail(err, LENSSIM_ERR_ARG, "label_csv_row: NULL %s", label ? "buffer" : "label");
    return 0;
  }
  t.buf = buf;
  t.cap = cap;
  t.len = 0;
  lenssim__text_add(&t, "%s", lenssim__u64_text((uint64_t)index, num));
  LENSSIM__LABEL_COLUMNS(LENSSIM__COLUMN_ROW)
  lenssim__text_add(&t, "\n");
  if (t.len >= cap) {
    if (cap) buf[0] = 0;
    lenssim__fail(err, LENSSIM_ERR_ARG, "label_csv_row: the row of object %s needs %lu bytes, the buffer holds %lu",
                  lenssim__u64_text((uint64_t)index, num), (unsigned long)(t.len + 1), (unsigned long)cap);
    return 0;
  }
  return t.len;
}
#undef LENSSIM__COLUMN_ROW
#undef LENSSIM__COLUMN_KIND
#undef LENSSIM__COLUMN_REAL
#undef LENSSIM__COLUMN_INT

/* A 64-bit hash of (seed, index, stream) through three splitmix64 rounds: each object and each of
 * its random streams gets a seed of its own, so object i never depends on object j. */
static uint64_t lenssim__hash3(uint64_t seed, uint64_t index, uint64_t stream) {
  uint64_t s = seed;
  uint64_t h = lenssim__splitmix64(&s);
  s = h ^ (index * 0x9e3779b97f4a7c15ULL);
  h = lenssim__splitmix64(&s);
  s = h ^ (stream * 0xd1b54a32d192ed03ULL + 0x632be59bd9b4e019ULL);
  return lenssim__splitmix64(&s);
}

static double lenssim__hash_uniform(uint64_t seed, uint64_t index, uint64_t stream) {
  return (double)(lenssim__hash3(seed, index, stream) >> 11) * (1.0 / 9007199254740992.0);
}

/* Inverse CDF table of a density f on [lo, hi]: icdf[k] is the (k/(N-1)) quantile. The density
 * is integrated with the trapezoid rule on 4096 cells and inverted by linear interpolation. */
static void lenssim__build_icdf(double (*f)(const lenssim_dataset *, double), const lenssim_dataset *ds, double lo,
                                double hi, double *icdf) {
  enum { CELLS = 4096 };
  double cdf[CELLS + 1], h = (hi - lo) / CELLS, prev, target;
  int i, k;
  cdf[0] = 0.0;
  prev = f(ds, lo);
  for (i = 1; i <= CELLS; i++) {
    double cur = f(ds, lo + h * i);
    cdf[i] = cdf[i - 1] + 0.5 * (prev + cur) * h;
    prev = cur;
  }
  i = 0;
  for (k = 0; k < LENSSIM__ICDF_N; k++) {
    target = cdf[CELLS] * (double)k / (LENSSIM__ICDF_N - 1);
    while (i < CELLS - 1 && cdf[i + 1] < target) i++;
    {
      double span = cdf[i + 1] - cdf[i], t = span > 0 ? (target - cdf[i]) / span : 0.0;
      if (t < 0) t = 0;
      if (t > 1) t = 1;
      icdf[k] = lo + h * (i + t);
    }
  }
}

static double lenssim__icdf_draw(const double *icdf, double u) {
  double pos = u * (LENSSIM__ICDF_N - 1), fr;
  int k = (int)pos;
  if (k >= LENSSIM__ICDF_N - 1) return icdf[LENSSIM__ICDF_N - 1];
  fr = pos - k;
  return icdf[k] + fr * (icdf[k + 1] - icdf[k]);
}

/* D_C(z) from the table (linear interpolation on steps of 0.01: relative error < 1e-5). */
static double lenssim__dc(const lenssim_dataset *ds, double z) {
  double pos = z / LENSSIM__ZTAB_STEP, fr;
  int k;
  if (pos <= 0) return 0.0;
  k = (int)pos;
  if (k >= LENSSIM__ZTAB_N - 1) return ds->dc_table[LENSSIM__ZTAB_N - 1];
  fr = pos - k;
  return ds->dc_table[k] + fr * (ds->dc_table[k + 1] - ds->dc_table[k]);
}

/* Einstein radius of an SIS from the tabulated distances (flat universe: D_ls/D_s = (D_C(zs) -
 * D_C(zl))/D_C(zs)). */
static double lenssim__theta_E(const lenssim_dataset *ds, double sigma_v, double zl, double zs) {
  double dcs = lenssim__dc(ds, zs), dcl = lenssim__dc(ds, zl), v = sigma_v / LENSSIM__C_KM_S;
  if (!(zs > zl) || !(dcs > 0)) return 0.0;
  return 4.0 * LENSSIM__PI * v * v * (dcs - dcl) / dcs * LENSSIM__ARCSEC_PER_RAD;
}

/* Deflector redshifts: uniform in comoving volume, dV/dz proportional to D_C^2 / E(z) (no
 * evolution of the VDF, as in Collett 2015). */
static double lenssim__density_zl(const lenssim_dataset *ds, double z) {
  double H0, Om0, dc = lenssim__dc(ds, z);
  lenssim__cosmo_defaults(&ds->config.cosmology, &H0, &Om0);
  return dc * dc * lenssim__inv_E(Om0, z);
}
static double lenssim__density_sigma(const lenssim_dataset *ds, double s) { (void)ds; return lenssim_velocity_dispersion_function(s); }
/* Source redshifts: n(z) ~ z^2 exp(-z/0.5) (a Smail et al. 1994 form; quantiles 16/50/84% at
 * z = 0.71, 1.34, 2.29, as the simulated LSST catalogue LensPop draws its sources from: 0.62, 1.35,
 * 2.38) */
static double lenssim__density_zs(const lenssim_dataset *ds, double z) { (void)ds; return z * z * exp(-z / 0.5); }

#define LENSSIM__NEIGHBOUR_N0 30.0
#define LENSSIM__ZL_MIN 0.05
#define LENSSIM__ZL_MAX 2.0
#define LENSSIM__SIGMA_MIN 80.0
#define LENSSIM__SIGMA_MAX 450.0
#define LENSSIM__ZS_MIN 0.2
#define LENSSIM__ZS_MAX 5.9

/* ---- layouts and configuration -------------------------------------------------------------- */
typedef struct {
  int channels, num_pix;
  double pixel_scale;
  const char *bands[4];
  int mode[4], factor[4], ss[4]; /* per channel: 0 direct, 1 finer and binned, 2 coarser and resampled */
  int detection;                 /* the channel the selection measures in: the sharpest */
} lenssim__layout_def;

static const lenssim__layout_def lenssim__layouts[LENSSIM_LAYOUT_COUNT] = {
  {0, 0, 0.0, {0, 0, 0, 0}, {0, 0, 0, 0}, {0, 0, 0, 0}, {0, 0, 0, 0}, 0},
  /* OU-66: VIS at its own 0.1" (one sample per pixel), PSF and noise there, then 3x3 sums: each
   * 0.3" pixel is then a 3x3-supersampled VIS pixel with the PSF applied at 0.1" */
  {4, 66, 0.3, {"VIS", "NISP_Y", "NISP_J", "NISP_H"}, {1, 0, 0, 0}, {3, 1, 1, 1}, {1, 3, 3, 3}, 0},
  /* OU-200: NISP at its own 0.3" on 69 x 69 pixels (covering the 20" field), noise there, then
   * bilinear resampling to 0.1" with the flux per pixel divided by 9 */
  {4, 200, 0.1, {"VIS", "NISP_Y", "NISP_J", "NISP_H"}, {0, 2, 2, 2}, {1, 3, 3, 3}, {2, 3, 3, 3}, 0},
  {3, 64, 0.168, {"HSC_g", "HSC_r", "HSC_i", 0}, {0, 0, 0, 0}, {1, 1, 1, 1}, {3, 3, 3, 3}, 2},
  {1, 192, 0.04, {"HST_F160W", 0, 0, 0}, {0, 0, 0, 0}, {1, 1, 1, 1}, {2, 2, 2, 2}, 0},
  {1, 150, 0.05, {"HST_F160W", 0, 0, 0}, {0, 0, 0, 0}, {1, 1, 1, 1}, {2, 2, 2, 2}, 0},
  {1, 101, 0.1, {"CHALLENGE1_VIS", 0, 0, 0}, {0, 0, 0, 0}, {1, 1, 1, 1}, {2, 2, 2, 2}, 0},
};

static lenssim_layout lenssim__preset_layout(lenssim_preset p) {
  switch (p) {
    case LENSSIM_PRESET_DEEPLENSE_SUBSTRUCTURE: return LENSSIM_LAYOUT_HST150;
    case LENSSIM_PRESET_ENSAI_MODELLING: return LENSSIM_LAYOUT_HST192;
    default: return LENSSIM_LAYOUT_OU66;
  }
}

/* Index of a band in the table (for the colour templates). */
static int lenssim__band_index(const lenssim_band *b) { return (int)(b - lenssim__bands); }

LENSSIM_API size_t lenssim_dataset_image_floats(const lenssim_dataset *ds) {
  return (size_t)ds->channels * (size_t)ds->num_pix * (size_t)ds->num_pix;
}
LENSSIM_API size_t lenssim_dataset_workspace_bytes(const lenssim_dataset *ds) { return ds->workspace_bytes; }

static void lenssim__channel_scene(const lenssim_dataset *ds, int ch, lenssim_scene *sc) {
  const lenssim_band *b = ds->band[ch];
  memset(sc, 0, sizeof *sc);
  sc->grid.num_pix = ds->render_pix[ch];
  sc->grid.pixel_scale = ds->render_scale[ch];
  sc->grid.supersampling = ds->render_ss[ch];
  lenssim__band_psf(b, &sc->psf);
  sc->psf.fwhm *= ds->config.psf_scale;
  if (ds->psf_side[ch] > 0) {
    sc->psf.kind = LENSSIM_PSF_PIXEL;
    sc->psf.kernel = ds->psf_kernel[ch];
    sc->psf.kernel_size = ds->psf_side[ch];
  }
}

/* The PSF of a Moffat band on channel ch's render grid, out to max(3 FWHM, 1") (at most 15
 * pixels): a Moffat (1969) profile I(r) ~ (1 + (r/alpha)^2)^-beta, alpha = FWHM / (2 sqrt(2^(1/beta)
 * - 1)), whose r^-2beta wings a Gaussian lacks. With one render sample per pixel the kernel is the
 * profile integrated over the pixel (8 x 8 points per pixel): the detector's pixel response,
 * which a supersampled render already gives by averaging its samples. */
static void lenssim__dataset_psf(lenssim_dataset *ds, int ch) {
  const lenssim_band *b = ds->band[ch];
  double s = ds->render_scale[ch], beta = b->moffat_beta > 0 ? b->moffat_beta : 3.5, reach, alpha, sum = 0.0;
  double fwhm = b->psf_fwhm * ds->config.psf_scale;
  int r, side, i, j, u, v, sub = ds->render_ss[ch] == 1 ? 8 : 1;
  ds->psf_side[ch] = 0;
  if (b->psf_kind != LENSSIM_PSF_MOFFAT || !(fwhm > 0)) return;
  alpha = fwhm / (2.0 * sqrt(pow(2.0, 1.0 / beta) - 1.0));
  reach = 3.0 * fwhm > 1.0 ? 3.0 * fwhm : 1.0;
  r = (int)ceil(reach / s);
  if (r > 15) r = 15;
  side = 2 * r + 1;
  for (i = 0; i < side; i++)
    for (j = 0; j < side; j++) {
      double acc = 0.0;
      for (u = 0; u < sub; u++)
        for (v = 0; v < sub; v++) {
          double y = (i - r + (u + 0.5) / sub - 0.5) * s, x = (j - r + (v + 0.5) / sub - 0.5) * s;
          acc += pow(1.0 + (x * x + y * y) / (alpha * alpha), -beta);
        }
      ds->psf_kernel[ch][i * side + j] = acc;
      sum += acc;
    }
  for (i = 0; i < side * side; i++) ds->psf_kernel[ch][i] /= sum;
  ds->psf_side[ch] = side;
}

LENSSIM_API lenssim_result lenssim_dataset_init(lenssim_dataset *ds, const lenssim_dataset_config *config, uint64_t seed,
                                                lenssim_error *err) {
  lenssim_dataset_config c;
  const lenssim__layout_def *L;
  size_t max_pix2 = 0, max_render = 0, bytes;
  int ch, k;
  if (!ds || !config) return lenssim__fail(err, LENSSIM_ERR_ARG, "dataset: NULL argument");
  memset(ds, 0, sizeof *ds);
  c = *config;
  if ((int)c.preset < 0 || c.preset >= LENSSIM_PRESET_COUNT)
    return lenssim__fail(err, LENSSIM_ERR_UNKNOWN, "dataset: unknown preset %d", (int)c.preset);
  if ((int)c.layout < 0 || c.layout >= LENSSIM_LAYOUT_COUNT)
    return lenssim__fail(err, LENSSIM_ERR_UNKNOWN, "dataset: unknown layout %d", (int)c.layout);
  if (c.layout == LENSSIM_LAYOUT_DEFAULT) c.layout = lenssim__preset_layout(c.preset);
  if (c.lens_fraction != 0 && (c.preset == LENSSIM_PRESET_DEEPLENSE_SUBSTRUCTURE || c.preset == LENSSIM_PRESET_ENSAI_MODELLING))
    return lenssim__fail(err, LENSSIM_ERR_ARG, "dataset: lens_fraction does not apply to preset '%s', whose objects are all lenses",
                         lenssim_preset_name(c.preset));
  if (c.lens_fraction == 0) c.lens_fraction = 0.5;
  if (!(c.lens_fraction >= 0 && c.lens_fraction <= 1))
    return lenssim__fail(err, LENSSIM_ERR_RANGE, "dataset: lens_fraction = %g is out of range (0..1)", c.lens_fraction);
  if (c.supersampling < 0 || c.supersampling > 8)
    return lenssim__fail(err, LENSSIM_ERR_RANGE, "dataset: supersampling = %d is out of range (0..8)", c.supersampling);
  if (c.theta_E_max == 0) c.theta_E_max = 100.0;
  if (!(c.theta_E_min >= 0 && c.theta_E_max > c.theta_E_min && c.theta_E_max <= 100.0))
    return lenssim__fail(err, LENSSIM_ERR_RANGE, "dataset: theta_E window [%g, %g] is not 0 <= min < max <= 100",
                         c.theta_E_min, c.theta_E_max);
  if (c.snr_min == 0) c.snr_min = 20.0;
  if (c.magnification_min == 0) c.magnification_min = 3.0;
  if (!(c.snr_min >= 0 && c.snr_min < 1e6) || !(c.magnification_min >= 0 && c.magnification_min < 1e4))
    return lenssim__fail(err, LENSSIM_ERR_RANGE, "dataset: snr_min = %g or magnification_min = %g is out of range",
                         c.snr_min, c.magnification_min);
  if (c.clumpy_fraction == 0) c.clumpy_fraction = 0.5;
  if (c.clumpy_fraction < 0) c.clumpy_fraction = 0.0;
  if (c.clumpy_fraction > 1)
    return lenssim__fail(err, LENSSIM_ERR_RANGE, "dataset: clumpy_fraction = %g is above 1", c.clumpy_fraction);
  if (c.neighbour_density == 0) c.neighbour_density = LENSSIM__NEIGHBOUR_N0;
  if (c.neighbour_density < 0) c.neighbour_density = 0.0;
  if (!(c.neighbour_density <= 1000))
    return lenssim__fail(err, LENSSIM_ERR_RANGE, "dataset: neighbour_density = %g is out of range (0..1000 per arcmin^2)", c.neighbour_density);
  if (c.psf_scale == 0) c.psf_scale = 1.0;
  if (!(c.psf_scale >= 0.1 && c.psf_scale <= 10))
    return lenssim__fail(err, LENSSIM_ERR_RANGE, "dataset: psf_scale = %g is out of range (0.1..10)", c.psf_scale);
  if (c.exposure_scale == 0) c.exposure_scale = 1.0;
  if (!(c.exposure_scale >= 1e-3 && c.exposure_scale <= 1e3))
    return lenssim__fail(err, LENSSIM_ERR_RANGE, "dataset: exposure_scale = %g is out of range (0.001..1000)", c.exposure_scale);
  if (c.substructure_scale == 0) c.substructure_scale = 1.0;
  if (c.substructure_scale < 0) c.substructure_scale = 0.0;
  if (!(c.substructure_scale <= 100))
    return lenssim__fail(err, LENSSIM_ERR_RANGE, "dataset: substructure_scale = %g is out of range", c.substructure_scale);
  {
    double H0, Om0;
    lenssim__cosmo_defaults(&c.cosmology, &H0, &Om0);
    if (!(H0 > 0 && H0 < 1000) || !(Om0 > 0 && Om0 <= 1))
      return lenssim__fail(err, LENSSIM_ERR_RANGE, "dataset: cosmology H0 = %g, Om0 = %g out of range", H0, Om0);
    c.cosmology.H0 = H0;
    c.cosmology.Om0 = Om0;
  }
  ds->config = c;
  ds->seed = seed;
  ds->classes = 1;
  for (k = 0; lenssim__preset_classes[c.preset][k]; k++) ds->classes += lenssim__preset_classes[c.preset][k] == ',';
  L = &lenssim__layouts[c.layout];
  ds->channels = L->channels;
  ds->num_pix = L->num_pix;
  ds->pixel_scale = L->pixel_scale;
  ds->detection_channel = L->detection;
  for (ch = 0; ch < L->channels; ch++) {
    lenssim_scene sc;
    size_t pix2, need;
    ds->band[ch] = lenssim_band_find(L->bands[ch]);
    ds->mode[ch] = L->mode[ch];
    ds->factor[ch] = L->factor[ch];
    ds->render_ss[ch] = c.supersampling ? c.supersampling : L->ss[ch];
    if (L->mode[ch] == 1) {
      ds->render_pix[ch] = L->num_pix * L->factor[ch];
      ds->render_scale[ch] = L->pixel_scale / L->factor[ch];
    } else if (L->mode[ch] == 2) {
      ds->render_pix[ch] = (L->num_pix + L->factor[ch] - 1) / L->factor[ch] + 2;
      ds->render_scale[ch] = L->pixel_scale * L->factor[ch];
    } else {
      ds->render_pix[ch] = L->num_pix;
      ds->render_scale[ch] = L->pixel_scale;
    }
    lenssim__dataset_psf(ds, ch);
    lenssim__channel_scene(ds, ch, &sc);
    need = lenssim_render_workspace_bytes(&sc);
    if (!need) return lenssim__fail(err, LENSSIM_ERR_TOO_LARGE, "dataset: channel %d is too large to render", ch);
    if (need > max_render) max_render = need;
    pix2 = (size_t)ds->render_pix[ch] * (size_t)ds->render_pix[ch];
    if (pix2 > max_pix2) max_pix2 = pix2;
  }
  /* workspace: the render's, then four images (sources of plane 1, of plane 2, lens light or
   * the whole scene, a sum) and the ray grid of the image counter (4 arrays), in doubles */
  bytes = max_render + 64 + sizeof(double) * (4 * max_pix2 + 4 * (size_t)(LENSSIM__COUNT_GRID + 1) * (LENSSIM__COUNT_GRID + 1));
  ds->workspace_bytes = bytes;
  ds->render_bytes = max_render;
  for (k = 0; k < LENSSIM__ZTAB_N; k++)
    ds->dc_table[k] = k == 0 ? 0.0 : ds->dc_table[k - 1] + lenssim_comoving_distance(&c.cosmology, (k - 1) * LENSSIM__ZTAB_STEP, k * LENSSIM__ZTAB_STEP);
  lenssim__build_icdf(lenssim__density_zl, ds, LENSSIM__ZL_MIN, LENSSIM__ZL_MAX, ds->zl_icdf);
  lenssim__build_icdf(lenssim__density_sigma, ds, LENSSIM__SIGMA_MIN, LENSSIM__SIGMA_MAX, ds->sigma_icdf);
  lenssim__build_icdf(lenssim__density_zs, ds, LENSSIM__ZS_MIN, LENSSIM__ZS_MAX, ds->zs_icdf);
  return LENSSIM_OK;
}

/* ---- which kind object `index` is ----------------------------------------------------------- */
/* Lenses among objects: object i is a lens when floor(i f + u0) steps up between i and i + 1
 * (u0 from the seed), so any run of n consecutive objects holds n f lenses, give or take one:
 * exact class ratios without a shared counter. */
LENSSIM_API lenssim_kind lenssim_dataset_kind(const lenssim_dataset *ds, uint64_t index) {
  const lenssim_dataset_config *c = &ds->config;
  double u = lenssim__hash_uniform(ds->seed, index, 0);
  if (c->preset == LENSSIM_PRESET_DEEPLENSE_SUBSTRUCTURE) {
    uint64_t off = lenssim__hash3(ds->seed, 0, 7) % 3;
    return (lenssim_kind)(LENSSIM_KIND_NO_SUBSTRUCTURE + (int)((index + off) % 3));
  }
  if (c->preset == LENSSIM_PRESET_ENSAI_MODELLING) return LENSSIM_KIND_GALAXY_GALAXY;
  {
    double f = c->lens_fraction, u0 = lenssim__hash_uniform(ds->seed, 0, 8);
    int lens = floor((double)(index + 1) * f + u0) > floor((double)index * f + u0);
    if (lens) {
      if (c->preset == LENSSIM_PRESET_EUCLID_COMPOUND)
        return u < 1.0 / 3.0 ? LENSSIM_KIND_GALAXY_GALAXY : (u < 2.0 / 3.0 ? LENSSIM_KIND_COMPOUND_ARC : LENSSIM_KIND_DOUBLE_RING);
      return LENSSIM_KIND_GALAXY_GALAXY;
    }
    /* non-lenses as a lens search meets them: every cutout is centred on a detected object, most
     * of them massive ellipticals like the deflectors (the candidates a search preselects), then
     * the look-alikes of arcs and rings; no empty sky */
    if (u < 0.40) return LENSSIM_KIND_ELLIPTICAL;
    if (u < 0.47) return LENSSIM_KIND_DISC;
    if (u < 0.59) return LENSSIM_KIND_SPIRAL;
    if (u < 0.66) return LENSSIM_KIND_EDGE_ON_DISC;
    if (u < 0.76) return LENSSIM_KIND_PAIR;
    if (u < 0.83) return LENSSIM_KIND_RING_GALAXY;
    if (u < 0.93) return LENSSIM_KIND_MERGER;
    return LENSSIM_KIND_STAR;
  }
}

static int lenssim__kind_class(lenssim_kind k) {
  switch (k) {
    case LENSSIM_KIND_GALAXY_GALAXY: case LENSSIM_KIND_COMPOUND_ARC: case LENSSIM_KIND_DOUBLE_RING: return 1;
    case LENSSIM_KIND_NO_SUBSTRUCTURE: return 0;
    case LENSSIM_KIND_SUBHALOS: return 1;
    case LENSSIM_KIND_VORTEX: return 2;
    default: return 0;
  }
}

/* ---- one object: its profiles and its draws -------------------------------------------------- */
/* Light entries carry amp for a VIS-like magnitude with zero point 0; scale[ch] turns that into
 * counts/s in channel ch (colour and zero point). group: -1 unlensed foreground light (the lens
 * galaxy, or any galaxy of a non-lens), 0 the first source plane, 1 the second. */
typedef struct {
  lenssim_mass mass[LENSSIM_MAX_PROFILES];
  size_t n_mass, n_main_mass;      /* n_main_mass: the smooth lens, before substructure */
  int multi_plane;
  double z_source, z_conv;
  lenssim_light light[LENSSIM_MAX_PROFILES];
  double scale[LENSSIM_MAX_PROFILES][4];
  int group[LENSSIM_MAX_PROFILES];
  size_t n_light;
  double unlensed[2];              /* counts/s of each source plane in the detection channel */
  int with_source;                 /* a lone deflector gets a source behind it (fixed per object) */
  double z_group[2];
  double src_x[2], src_y[2];       /* centre of each source plane's source */
} lenssim__object;

/* Colours as magnitude offsets from VIS for a red (passive) and a blue (star-forming) template,
 * by band in the table's order: VIS, NISP_Y, NISP_J, NISP_H, HSC_g, HSC_r, HSC_i, HST_F160W,
 * CHALLENGE1_VIS (taken as VIS).
 * Rough broad-band colours of an early-type galaxy at z ~ 0.5 and of a flat-spectrum source;
 * t in [0, 1] mixes them, plus 0.05 mag of scatter per band. */
static const double lenssim__red_colour[9] = {0.0, -0.55, -0.8, -1.0, 1.6, 0.7, 0.15, -1.0, 0.0};
static const double lenssim__blue_colour[9] = {0.0, -0.1, -0.15, -0.2, 0.35, 0.15, 0.05, -0.2, 0.0};

static double lenssim__colour_scales(const lenssim_dataset *ds, double t, lenssim_rng *rng, double scale[4]) {
  int ch;
  double det_offset = 0.0;
  for (ch = 0; ch < 4; ch++) scale[ch] = 0.0;
  for (ch = 0; ch < ds->channels; ch++) {
    int b = lenssim__band_index(ds->band[ch]);
    double off = (1.0 - t) * lenssim__blue_colour[b] + t * lenssim__red_colour[b] + 0.05 * lenssim_rng_normal(rng);
    scale[ch] = pow(10.0, -0.4 * (off - ds->band[ch]->zero_point));
    if (ch == ds->detection_channel) det_offset = off;
  }
  return det_offset;
}

static double lenssim__uniform(lenssim_rng *rng, double lo, double hi) { return lo + (hi - lo) * lenssim_rng_uniform(rng); }

/* (e1, e2) of an axis ratio q and a uniformly drawn orientation. */
static void lenssim__draw_e(lenssim_rng *rng, double q, double *e1, double *e2) {
  double phi = lenssim__uniform(rng, 0.0, LENSSIM__PI), c = (1.0 - q) / (1.0 + q);
  *e1 = c * cos(2.0 * phi);
  *e2 = c * sin(2.0 * phi);
}

static lenssim_light *lenssim__push_light(lenssim__object *o, int group, const double scale[4]) {
  lenssim_light *l;
  if (o->n_light >= LENSSIM_MAX_PROFILES) return NULL;
  l = &o->light[o->n_light];
  memset(l, 0, sizeof *l);
  memcpy(o->scale[o->n_light], scale, 4 * sizeof(double));
  o->group[o->n_light] = group;
  o->n_light++;
  return l;
}

static void lenssim__count_unlensed(const lenssim_dataset *ds, lenssim__object *o, int group, double counts_unit,
                                    const double scale[4]) {
  if (group >= 0) o->unlensed[group] += counts_unit * scale[ds->detection_channel];
}

/* A Sersic galaxy of VIS-like magnitude mag (colour template t); returns its detection-band
 * magnitude. */
static double lenssim__add_sersic(const lenssim_dataset *ds, lenssim__object *o, lenssim_rng *rng, int group, double mag,
                                  double t, double R, double n, double e1, double e2, double cx, double cy, double z) {
  double scale[4], off = lenssim__colour_scales(ds, t, rng, scale);
  lenssim_light *l = lenssim__push_light(o, group, scale);
  if (!l) return mag + off;
  l->kind = LENSSIM_LIGHT_SERSIC_ELLIPSE;
  l->amp = lenssim_sersic_amp_from_magnitude(mag, 0.0, R, n);
  l->R_sersic = R; l->n_sersic = n; l->e1 = e1; l->e2 = e2; l->center_x = cx; l->center_y = cy; l->redshift = z;
  lenssim__count_unlensed(ds, o, group, lenssim_magnitude_to_counts(mag, 0.0), scale);
  return mag + off;
}

/* The widest spacing between render samples over the channels (arcsec): what a profile must be
 * about twice as wide as to have its flux caught by the samples (a Gaussian of sigma s sampled
 * every d sums to its integral within exp(-2 pi^2 s^2 / d^2): 0.7 % at d = 2 s). */
static double lenssim__sample_spacing(const lenssim_dataset *ds) {
  double d = 0.0, v;
  int ch;
  for (ch = 0; ch < ds->channels; ch++)
    if ((v = ds->render_scale[ch] / (ds->render_ss[ch] > 0 ? ds->render_ss[ch] : 1)) > d) d = v;
  return d;
}

/* A clumpy star-forming galaxy (lenssim_clumpy_source) with 3-7 clumps holding 20-50% of the flux.
 * The clumps are at least half a render sample wide (sigma), narrower ones being lost between
 * the samples or caught at their peak (a source of R = 0.08" kept 0.6 to 2.1 times its flux at
 * 0.1" samples): below that size the PSF makes them alike. */
static double lenssim__add_clumpy(const lenssim_dataset *ds, lenssim__object *o, lenssim_rng *rng, int group, double mag,
                                  double t, double R, double n, double e1, double e2, double cx, double cy, double z) {
  double scale[4], off = lenssim__colour_scales(ds, t, rng, scale);
  lenssim_clumpy c;
  lenssim_light parts[16];
  size_t made, k;
  memset(&c, 0, sizeof c);
  c.amp = lenssim_sersic_amp_from_magnitude(mag, 0.0, R, n);
  c.R_sersic = R; c.n_sersic = n; c.e1 = e1; c.e2 = e2; c.center_x = cx; c.center_y = cy; c.redshift = z;
  c.num_clumps = 3 + (int)(5.0 * lenssim_rng_uniform(rng));
  c.clump_fraction = lenssim__uniform(rng, 0.2, 0.5);
  c.clump_sigma = 0.15 * R;
  if (c.clump_sigma < 0.5 * lenssim__sample_spacing(ds)) c.clump_sigma = 0.5 * lenssim__sample_spacing(ds);
  made = lenssim_clumpy_source(&c, rng, parts, 16);
  for (k = 0; k < made; k++) {
    lenssim_light *l = lenssim__push_light(o, group, scale);
    if (!l) break;
    *l = parts[k];
  }
  lenssim__count_unlensed(ds, o, group, lenssim_magnitude_to_counts(mag, 0.0), scale);
  return mag + off;
}

/* A round Gaussian of total VIS-like magnitude mag (stars, knots of rings and tidal tails). */
static void lenssim__add_gaussian(const lenssim_dataset *ds, lenssim__object *o, int group, double mag, const double scale[4],
                                  double sigma, double cx, double cy, double z) {
  lenssim_light *l = lenssim__push_light(o, group, scale);
  if (!l) return;
  l->kind = LENSSIM_LIGHT_GAUSSIAN;
  l->amp = lenssim_magnitude_to_counts(mag, 0.0);
  l->sigma = sigma; l->center_x = cx; l->center_y = cy; l->redshift = z;
  lenssim__count_unlensed(ds, o, group, l->amp, scale);
}

/* Light of an early-type galaxy of velocity dispersion sigma at z:
 *  - luminosity from a Faber & Jackson (1976) relation L ~ sigma^4: M = -22.3 - 10 log10(sigma/200)
 *    with 0.3 mag scatter (the zero point and slope of Hyde & Bernardi 2009's sigma-M_r relation
 *    near 200 km/s, which LensPop uses), apparent m = M + 5 log10(D_L / 10 pc) + k z (a rough K correction: k = 1
 *    for passive lens galaxies, 0 for the star-forming second deflector of a compound arc, whose
 *    rest-frame UV falls in VIS);
 *  - half-light radius from a simple sigma-R_e scaling, R_e = 4 kpc (sigma/200)^1.5 with 0.1 dex
 *    scatter (the Fundamental Plane's edge-on slope, roughly);
 *  - Sersic n in [3, 5]. */
static void lenssim__early_type_light(const lenssim_dataset *ds, lenssim_rng *rng, double sigma, double z, double k_per_z,
                                      double *mag, double *R_arcsec, double *n) {
  double dc = lenssim__dc(ds, z), dl = dc * (1.0 + z), da = dc / (1.0 + z);
  double M = -22.3 - 10.0 * log10(sigma / 200.0) + 0.3 * lenssim_rng_normal(rng);
  double Re_kpc = 4.0 * pow(sigma / 200.0, 1.5) * pow(10.0, 0.1 * lenssim_rng_normal(rng));
  *mag = M + 5.0 * log10(dl > 1e-6 ? dl : 1e-6) + 25.0 + k_per_z * z;
  *R_arcsec = Re_kpc / (da * 1000.0) * LENSSIM__ARCSEC_PER_RAD;
  if (*R_arcsec < 0.05) *R_arcsec = 0.05;
  *n = lenssim__uniform(rng, 3.0, 5.0);
}

/* Source magnitudes: number counts dN/dm ~ 10^(0.3 m) on [20, 27.5] (the faint-galaxy slope);
 * sizes: log10(R_e/arcsec) = log10(0.2) - 0.1 (m - 23) with 0.15 dex scatter, in [0.04, 1.5]
 * (0.11" at m = 25.5, the median size of the sources of LensPop's Euclid lenses). */
static double lenssim__source_magnitude(lenssim_rng *rng, double lo, double hi) {
  double a = pow(10.0, 0.3 * lo), b = pow(10.0, 0.3 * hi);
  return log10(a + lenssim_rng_uniform(rng) * (b - a)) / 0.3;
}
/* The apparent magnitude of a source at redshift z, as a luminosity function makes it: absolute
 * magnitude M from a Schechter (1976) function with M* = -21 and faint slope alpha = -1.3 (of the
 * order of star-forming galaxies' rest-frame UV-optical functions at z ~ 1-3), then
 * m = M + 5 log10(D_L / 10 pc) - 2.5 log10(1 + z) (the K correction of a spectrum flat in f_nu),
 * kept within [lo, hi] (by rejection; at most 4 magnitudes brighter than M*). So distant
 * sources are fainter, which a magnitude drawn apart from z would not make them. */
static double lenssim__source_magnitude_at(const lenssim_dataset *ds, lenssim_rng *rng, double z, double lo, double hi) {
  const double M_star = -21.0, alpha = -1.3;
  double dl = lenssim__dc(ds, z) * (1.0 + z), dm, M_lo, M_hi, p_max;
  int k;
  if (!(dl > 1e-6)) return hi;
  dm = 5.0 * log10(dl) + 25.0 - 2.5 * log10(1.0 + z);
  M_lo = lo - dm > M_star - 4.0 ? lo - dm : M_star - 4.0;
  M_hi = hi - dm;
  if (!(M_hi > M_lo)) return hi;
  /* the Schechter density per magnitude, x^(alpha+1) exp(-x) with x = 10^(0.4 (M* - M)), grows
   * towards faint M for alpha > -1 ... here alpha + 1 < 0: it is largest at M_hi */
  {
    double x = pow(10.0, 0.4 * (M_star - M_hi));
    p_max = pow(x, alpha + 1.0) * exp(-x);
  }
  for (k = 0; k < 1000; k++) {
    double M = lenssim__uniform(rng, M_lo, M_hi), x = pow(10.0, 0.4 * (M_star - M));
    if (lenssim_rng_uniform(rng) * p_max <= pow(x, alpha + 1.0) * exp(-x)) return M + dm;
  }
  return hi;
}

static double lenssim__source_size(lenssim_rng *rng, double mag) {
  double R = 0.2 * pow(10.0, -0.1 * (mag - 23.0) + 0.15 * lenssim_rng_normal(rng));
  return R < 0.04 ? 0.04 : (R > 1.5 ? 1.5 : R);
}

/* A background source in group g at (x, y): Sersic or clumpy; fills the label's source fields
 * when g == 0 and returns its detection-band magnitude. */
static double lenssim__add_source(const lenssim_dataset *ds, lenssim__object *o, lenssim_rng *rng, int group, double mag,
                                  double x, double y, double z, lenssim_label *lab) {
  double R = lenssim__source_size(rng, mag), n = lenssim__uniform(rng, 0.5, 4.0), e1, e2, m_det;
  int clumpy = lenssim_rng_uniform(rng) < ds->config.clumpy_fraction;
  double t = lenssim__uniform(rng, 0.0, 0.3);
  lenssim__draw_e(rng, lenssim__uniform(rng, 0.4, 1.0), &e1, &e2);
  if (clumpy) m_det = lenssim__add_clumpy(ds, o, rng, group, mag, t, R, n, e1, e2, x, y, z);
  else m_det = lenssim__add_sersic(ds, o, rng, group, mag, t, R, n, e1, e2, x, y, z);
  if (group >= 0 && group < 2) { o->src_x[group] = x; o->src_y[group] = y; }
  if (group == 0) {
    lab->source_x = x; lab->source_y = y; lab->source_R = R; lab->source_n = n; lab->source_clumpy = clumpy;
    lab->mag_source = m_det;
  } else {
    lab->mag_source2 = m_det;
  }
  return m_det;
}

/* A uniform point in a disc of radius r about (cx, cy). */
static void lenssim__disc_point(lenssim_rng *rng, double r, double cx, double cy, double *x, double *y) {
  double rad = r * sqrt(lenssim_rng_uniform(rng)), ang = 2.0 * LENSSIM__PI * lenssim_rng_uniform(rng);
  *x = cx + rad * cos(ang);
  *y = cy + rad * sin(ang);
}

static void lenssim__push_mass(lenssim__object *o, const lenssim_mass *m) {
  if (o->n_mass < LENSSIM_MAX_PROFILES) o->mass[o->n_mass++] = *m;
}

/* The main deflector and a source redshift, as Collett (2015, ApJ 811, 20) draws them: z_l
 * uniform in comoving volume and sigma_v from the Choi et al. (2007) VDF (tabulated inverse
 * CDFs), z_s from the source n(z) above z_l + 0.1. A lens is kept with probability
 * min(1, (theta_E / 3")^2): with the source then placed uniformly within a disc of radius
 * proportional to theta_E, that is the same as placing sources uniformly over a fixed area
 * (the lensing cross-section ~ theta_E^2). */
static int lenssim__draw_deflector(const lenssim_dataset *ds, lenssim_rng *rng, double zs_gap, double *zl, double *sigma,
                                   double *zs, double *theta) {
  int k;
  for (k = 0; k < 200000; k++) {
    double th, u;
    *zl = lenssim__icdf_draw(ds->zl_icdf, lenssim_rng_uniform(rng));
    *sigma = lenssim__icdf_draw(ds->sigma_icdf, lenssim_rng_uniform(rng));
    *zs = lenssim__icdf_draw(ds->zs_icdf, lenssim_rng_uniform(rng));
    u = lenssim_rng_uniform(rng);
    if (*zs < *zl + zs_gap) continue;
    th = lenssim__theta_E(ds, *sigma, *zl, *zs);
    if (th < ds->config.theta_E_min || th > ds->config.theta_E_max) continue;
    if (u * 9.0 > th * th) continue;
    *theta = th;
    return 1;
  }
  return 0;
}

/* A source redshift above z_min from the source n(z) (by rejection; z_min below 5.5). */
static double lenssim__draw_zs_above(const lenssim_dataset *ds, lenssim_rng *rng, double z_min) {
  int k;
  for (k = 0; k < 10000; k++) {
    double z = lenssim__icdf_draw(ds->zs_icdf, lenssim_rng_uniform(rng));
    if (z >= z_min) return z;
  }
  return z_min + 0.1;
}

/* The smooth main lens at the origin (within 0.05"): SIE (q ~ N(0.75, 0.15) in [0.4, 1]) with
 * theta_conv for the model's source convention, external shear (each component N(0, 0.03)), and
 * (optionally) early-type light with the same centre and ellipticity. */
static void lenssim__main_lens(const lenssim_dataset *ds, lenssim_rng *rng, lenssim__object *o, lenssim_label *lab,
                               double theta_conv, double sigma, double zl, double shear_sigma, int with_light) {
  lenssim_mass m;
  double q = 0.75 + 0.15 * lenssim_rng_normal(rng);
  q = q < 0.4 ? 0.4 : (q > 1.0 ? 1.0 : q);
  memset(&m, 0, sizeof m);
  m.kind = LENSSIM_MASS_SIE;
  m.theta_E = theta_conv;
  lenssim__draw_e(rng, q, &m.e1, &m.e2);
  m.center_x = 0.05 * lenssim_rng_normal(rng);
  m.center_y = 0.05 * lenssim_rng_normal(rng);
  m.redshift = zl;
  lenssim__push_mass(o, &m);
  lab->e1 = m.e1; lab->e2 = m.e2; lab->center_x = m.center_x; lab->center_y = m.center_y;
  lab->z_lens = zl; lab->sigma_v = sigma;
  if (shear_sigma > 0) {
    lenssim_mass s;
    memset(&s, 0, sizeof s);
    s.kind = LENSSIM_MASS_SHEAR;
    s.gamma1 = shear_sigma * lenssim_rng_normal(rng);
    s.gamma2 = shear_sigma * lenssim_rng_normal(rng);
    if (fabs(s.gamma1) > 0.2) s.gamma1 = s.gamma1 > 0 ? 0.2 : -0.2;
    if (fabs(s.gamma2) > 0.2) s.gamma2 = s.gamma2 > 0 ? 0.2 : -0.2;
    s.redshift = zl;
    lenssim__push_mass(o, &s);
    lab->gamma1 = s.gamma1; lab->gamma2 = s.gamma2;
  }
  if (with_light) {
    double mag, R, n;
    lenssim__early_type_light(ds, rng, sigma, zl, 1.0, &mag, &R, &n);
    lab->mag_lens = lenssim__add_sersic(ds, o, rng, -1, mag, lenssim__uniform(rng, 0.8, 1.0), R, n, m.e1, m.e2,
                                        m.center_x, m.center_y, zl);
  }
}

/* sigma_v of an SIS with Einstein radius theta for (zl, zs): the inverse of lenssim__theta_E. */
static double lenssim__sigma_from_theta(const lenssim_dataset *ds, double theta, double zl, double zs) {
  double dcs = lenssim__dc(ds, zs), dcl = lenssim__dc(ds, zl);
  return LENSSIM__C_KM_S * sqrt(theta / LENSSIM__ARCSEC_PER_RAD / (4.0 * LENSSIM__PI) * dcs / (dcs - dcl));
}

/* ---- kinds ---------------------------------------------------------------------------------- */
static int lenssim__draw_galaxy_galaxy(const lenssim_dataset *ds, lenssim_rng *rng, lenssim__object *o, lenssim_label *lab) {
  double zl, sigma, zs, th, x, y;
  if (!lenssim__draw_deflector(ds, rng, 0.1, &zl, &sigma, &zs, &th)) return 0;
  o->z_source = o->z_conv = zs;
  lenssim__main_lens(ds, rng, o, lab, th, sigma, zl, 0.03, 1);
  lab->theta_E = th; lab->z_source = zs;
  lenssim__disc_point(rng, 1.2 * th, lab->center_x, lab->center_y, &x, &y);
  lenssim__add_source(ds, o, rng, 0, lenssim__source_magnitude_at(ds, rng, zs, 20.0, 27.5), x, y, zs, lab);
  return 1;
}

/* Two source planes behind one deflector (a double Einstein ring, as SDSSJ0946+1006, Gavazzi
 * et al. 2008: z_l = 0.222, z_s1 = 0.609, z_s2 ~ 2.4, rings of 1.43" and 2.07"). The deflector and
 * the far source z_s2 come from lenssim__draw_deflector (weighted by theta_E2^2); the near source
 * z_s1 from the source n(z) between z_l + 0.1 and z_s2 - 0.3, kept with probability
 * (theta_E1 / theta_E2)^2 (its own cross-section), so that z_s1 sits at moderate redshift as in
 * Collett et al. 2012's double-source-plane forecast. The two rings must differ in radius by at
 * least one output pixel (else they are one ring at this resolution); each source within 1.2 of
 * its own Einstein radius. */
static int lenssim__draw_double_ring(const lenssim_dataset *ds, lenssim_rng *rng, lenssim__object *o, lenssim_label *lab) {
  double zl, sigma, zs1 = 0, zs2, th1 = 0, th2, x, y;
  int k, found = 0;
  if (!lenssim__draw_deflector(ds, rng, 0.4, &zl, &sigma, &zs2, &th2)) return 0;
  if (zs2 > 5.5) return 0;
  for (k = 0; k < 200 && !found; k++) {
    zs1 = lenssim__icdf_draw(ds->zs_icdf, lenssim_rng_uniform(rng));
    if (zs1 < zl + 0.1 || zs1 > zs2 - 0.3) continue;
    th1 = lenssim__theta_E(ds, sigma, zl, zs1);
    found = lenssim_rng_uniform(rng) * th2 * th2 < th1 * th1;
  }
  if (!found || th2 - th1 < ds->pixel_scale || th1 < ds->config.theta_E_min) return 0;
  o->multi_plane = 1;
  o->z_source = zs1;
  o->z_conv = zs2;
  lenssim__main_lens(ds, rng, o, lab, th2, sigma, zl, 0.03, 1);
  lab->theta_E = th1; lab->theta_E2 = th2; lab->z_source = zs1; lab->z_source2 = zs2;
  o->z_group[0] = zs1; o->z_group[1] = zs2;
  lenssim__disc_point(rng, 1.2 * th1, lab->center_x, lab->center_y, &x, &y);
  lenssim__add_source(ds, o, rng, 0, lenssim__source_magnitude_at(ds, rng, zs1, 20.0, 27.5), x, y, zs1, lab);
  lenssim__disc_point(rng, 1.2 * th2, lab->center_x, lab->center_y, &x, &y);
  lenssim__add_source(ds, o, rng, 1, lenssim__source_magnitude_at(ds, rng, zs2, 20.0, 27.5), x, y, zs2, lab);
  return 1;
}

/* A compound arc: the main deflector at z_l lenses a second galaxy at z_2 (its light is the first
 * source plane), and the second galaxy's mass (an SIS, sigma_2 from the VDF below 250 km/s) lenses
 * a further source at z_s together with the main deflector (Collett & Auger 2014; Wilde et al.
 * 2022's compound lenses). Multi-plane ray tracing, lens strengths referred to z_s. */
static int lenssim__draw_compound_arc(const lenssim_dataset *ds, lenssim_rng *rng, lenssim__object *o, lenssim_label *lab) {
  double zl, sigma, z2, th1, zs, sigma2 = 0, th_main_s, th2_s, x2, y2, x, y, mag2, R2, n2, e1, e2;
  lenssim_mass m;
  int k;
  if (!lenssim__draw_deflector(ds, rng, 0.1, &zl, &sigma, &z2, &th1)) return 0;
  if (z2 > 4.5) return 0;
  zs = lenssim__draw_zs_above(ds, rng, z2 + 0.2);
  for (k = 0; k < 1000; k++) {
    sigma2 = lenssim__icdf_draw(ds->sigma_icdf, lenssim_rng_uniform(rng));
    if (sigma2 >= 100.0 && sigma2 < 250.0) break;
  }
  th_main_s = lenssim__theta_E(ds, sigma, zl, zs);
  th2_s = lenssim__theta_E(ds, sigma2, z2, zs);
  o->multi_plane = 1;
  o->z_source = z2;
  o->z_conv = zs;
  lenssim__main_lens(ds, rng, o, lab, th_main_s, sigma, zl, 0.03, 1);
  lab->theta_E = th1; lab->theta_E2 = th2_s; lab->z_lens2 = z2; lab->z_source = z2; lab->z_source2 = zs;
  o->z_group[0] = z2; o->z_group[1] = zs;
  /* the second galaxy: inside the main lens's caustic for z_2, so that its light is multiply imaged */
  lenssim__disc_point(rng, 1.0 * th1, lab->center_x, lab->center_y, &x2, &y2);
  memset(&m, 0, sizeof m);
  m.kind = LENSSIM_MASS_SIS;
  m.theta_E = th2_s;
  m.center_x = x2; m.center_y = y2;
  m.redshift = z2;
  lenssim__push_mass(o, &m);
  lenssim__early_type_light(ds, rng, sigma2, z2, 0.0, &mag2, &R2, &n2);
  n2 = lenssim__uniform(rng, 1.0, 4.0);
  lenssim__draw_e(rng, lenssim__uniform(rng, 0.5, 1.0), &e1, &e2);
  lab->source_x = x2; lab->source_y = y2; lab->source_R = R2; lab->source_n = n2;
  lab->mag_source = lenssim__add_sersic(ds, o, rng, 0, mag2, lenssim__uniform(rng, 0.2, 0.6), R2, n2, e1, e2, x2, y2, z2);
  /* the furthest source near the second galaxy's position, within reach of both lenses */
  lenssim__disc_point(rng, 0.5 * th1 + th2_s, x2, y2, &x, &y);
  {
    double sx = lab->source_x, sy = lab->source_y, sR = lab->source_R, sn = lab->source_n;
    lenssim__add_source(ds, o, rng, 1, lenssim__source_magnitude_at(ds, rng, zs, 20.0, 27.5), x, y, zs, lab);
    lab->source_x = sx; lab->source_y = sy; lab->source_R = sR; lab->source_n = sn;
  }
  return 1;
}

/* One smooth lens (SIE + shear at z_l, a source at z_s, theta_E uniform in [lo, hi]" unless the
 * window says otherwise), no lens light: the lens-modelling set. */
static int lenssim__draw_uniform_lens(const lenssim_dataset *ds, lenssim_rng *rng, lenssim__object *o, lenssim_label *lab,
                                      double lo, double hi, double shear, double source_radius, double zl, double zs,
                                      double mag_lo, double mag_hi) {
  double th, x, y;
  if (ds->config.theta_E_min > 0) lo = ds->config.theta_E_min;
  if (ds->config.theta_E_max < 100.0) hi = ds->config.theta_E_max;
  if (!(hi > lo)) return 0;
  th = lenssim__uniform(rng, lo, hi);
  o->z_source = o->z_conv = zs;
  lenssim__main_lens(ds, rng, o, lab, th, lenssim__sigma_from_theta(ds, th, zl, zs), zl, shear, 0);
  lab->theta_E = th; lab->z_source = zs;
  lenssim__disc_point(rng, source_radius * th, lab->center_x, lab->center_y, &x, &y);
  lenssim__add_source(ds, o, rng, 0, lenssim__source_magnitude(rng, mag_lo, mag_hi), x, y, zs, lab);
  return 1;
}

/* DeepLenseSim's Model I (Alexander et al. 2020, ApJ 893, 15; github.com/mwt5345/DeepLenseSim,
 * deeplense/lens.py), the data behind the DeepLense substructure figures: every image has the same
 * lens, an SIE for a 1e12 M_sun halo at z_l = 0.5 and a source at z_s = 1.0, e1 = 0.1, e2 = 0,
 * external shear gamma1 = 0.05, gamma2 = 0, at the centre, no lens light. Its Einstein radius is the
 * 1.282" DeepLenseSim's mass_to_radius gives: it takes luminosity distances for D_l and D_s, and
 * D_ls = D_s - D_l (angular-diameter distances would give 1.66"); the subhalos follow the same
 * formula, so theta_sub = theta_E sqrt(m / 1e12 M_sun). The source is a Sersic disc, n = 1,
 * R = 0.25", e1 = -0.1, e2 = 0.1, of surface brightness 20 counts/s/arcsec^2 at R (lenstronomy's
 * amp), centred uniformly within +-0.35" of the lens on each axis. The one random draw of a
 * no-substructure image is that position (and its noise). */
#define LENSSIM__DEEPLENSE_THETA_E 1.282
#define LENSSIM__DEEPLENSE_HALO 1e12
static int lenssim__draw_deeplense(const lenssim_dataset *ds, lenssim_rng *rng, lenssim__object *o, lenssim_label *lab) {
  lenssim_mass m, s;
  lenssim_light *l;
  double scale[4] = {1.0, 1.0, 1.0, 1.0}, amp = 20.0, R = 0.25, counts;
  memset(&m, 0, sizeof m);
  m.kind = LENSSIM_MASS_SIE;
  m.theta_E = LENSSIM__DEEPLENSE_THETA_E;
  m.e1 = 0.1;
  m.redshift = 0.5;
  lenssim__push_mass(o, &m);
  memset(&s, 0, sizeof s);
  s.kind = LENSSIM_MASS_SHEAR;
  s.gamma1 = 0.05;
  s.redshift = 0.5;
  lenssim__push_mass(o, &s);
  o->z_source = o->z_conv = 1.0;
  lab->theta_E = m.theta_E; lab->e1 = m.e1; lab->e2 = m.e2; lab->gamma1 = s.gamma1; lab->gamma2 = s.gamma2;
  lab->z_lens = 0.5; lab->z_source = 1.0;
  lab->sigma_v = lenssim__sigma_from_theta(ds, m.theta_E, 0.5, 1.0);
  l = lenssim__push_light(o, 0, scale);
  if (!l) return 0;
  l->kind = LENSSIM_LIGHT_SERSIC_ELLIPSE;
  l->amp = amp; l->R_sersic = R; l->n_sersic = 1.0; l->e1 = -0.1; l->e2 = 0.1;
  l->center_x = lenssim__uniform(rng, -0.35, 0.35);
  l->center_y = lenssim__uniform(rng, -0.35, 0.35);
  l->redshift = 1.0;
  counts = amp / lenssim_sersic_amp_from_counts(1.0, R, 1.0);
  lenssim__count_unlensed(ds, o, 0, counts, scale);
  o->src_x[0] = l->center_x; o->src_y[0] = l->center_y;
  lab->source_x = l->center_x; lab->source_y = l->center_y; lab->source_R = R; lab->source_n = 1.0;
  lab->mag_source = ds->band[ds->detection_channel]->zero_point - 2.5 * log10(counts);
  return 1;
}

/* Model I's substructure, each scaled by substructure_scale. CDM subhalos: 25 point masses (its
 * make_old_cdm: the Poisson draw of their number is not used), masses m from 1e6 to 1e10 M_sun
 * with m^0.1 uniform (the inverse CDF it applies with beta = -0.9, i.e. dN/dm ~ m^-0.9: 1.5e9 M_sun
 * on average, 3.8 % of the halo in all), at a radius uniform in 0.25-2.0" (not uniform in area)
 * and a uniform angle about the lens centre. Vortex (its make_vortex): 3e10 M_sun (3 %) spread
 * evenly along a line through the lens centre at a random angle, from -L to L with L the axion's
 * de Broglie length 0.03" (1e-22 eV / m_a), m_a log-uniform in 1e-24..1e-22 eV (L from 0.03" to
 * 3"). DeepLenseSim strings 100 point masses along the line; here it is the uniform rod they
 * approximate (LINE_MASS), of the same mass and length. */
static void lenssim__add_substructure(const lenssim_dataset *ds, lenssim_rng *rng, lenssim__object *o, lenssim_label *lab,
                                      lenssim_kind kind) {
  double th = lab->theta_E, s = ds->config.substructure_scale;
  if (kind == LENSSIM_KIND_SUBHALOS) {
    int n = 25, i;
    double a = pow(1e6, 0.1), b = pow(1e10, 0.1), total = 0.0;
    for (i = 0; i < n; i++) {
      lenssim_mass m;
      double frac = pow(a + lenssim_rng_uniform(rng) * (b - a), 10.0) / LENSSIM__DEEPLENSE_HALO * s;
      double r = lenssim__uniform(rng, 0.25, 2.0), ang = lenssim__uniform(rng, 0.0, 2.0 * LENSSIM__PI);
      memset(&m, 0, sizeof m);
      m.kind = LENSSIM_MASS_POINT_MASS;
      m.theta_E = th * sqrt(frac);
      m.center_x = lab->center_x + r * cos(ang);
      m.center_y = lab->center_y + r * sin(ang);
      m.redshift = lab->z_lens;
      lenssim__push_mass(o, &m);
      total += frac;
    }
    lab->n_subhalos = n;
    lab->substructure_mass = total;
  } else if (kind == LENSSIM_KIND_VORTEX) {
    lenssim_mass m;
    double half = 0.03 * pow(10.0, lenssim__uniform(rng, 0.0, 2.0)), frac = 0.03 * s;
    memset(&m, 0, sizeof m);
    m.kind = LENSSIM_MASS_LINE_MASS;
    m.length = 2.0 * half;
    m.angle = lenssim__uniform(rng, 0.0, LENSSIM__PI);
    m.center_x = lab->center_x;
    m.center_y = lab->center_y;
    m.line_density = frac * LENSSIM__PI * th * th / m.length;
    m.redshift = lab->z_lens;
    lenssim__push_mass(o, &m);
    lab->substructure_mass = frac;
    lab->vortex_length = m.length; lab->vortex_angle = m.angle; lab->vortex_density = m.line_density;
  }
}

/* Model I's noise (its simple_sim): an exposure t = 10^U(3, 3.5) s per image (times
 * exposure_scale); the image in counts/s gets Gaussian noise of variance image / t (lenstronomy's
 * add_poisson) and of rms 0.01 (add_background); that times t, clipped at 0, is the mean of a
 * Poisson draw, which divided by t is the pixel (counts/s). */
static void lenssim__deeplense_noise(const lenssim_dataset *ds, float *out, size_t count, lenssim_rng *rng) {
  double t = pow(10.0, lenssim__uniform(rng, 3.0, 3.5)) * ds->config.exposure_scale;
  size_t p;
  for (p = 0; p < count; p++) {
    double v = out[p], x = v + sqrt(fabs(v) / t) * lenssim_rng_normal(rng) + 0.01 * lenssim_rng_normal(rng);
    x *= t;
    out[p] = (float)(x > 0 ? lenssim_rng_poisson(rng, x) / t : 0.0);
  }
}

/* ---- non-lenses ------------------------------------------------------------------------------ */
/* An early-type galaxy drawn as the deflectors are (lenssim__draw_deflector: z_l uniform in
 * comoving volume, sigma_v from the VDF, weighted by the lensing cross-section theta_E^2 within
 * the theta_E window), so that its redshift, velocity dispersion and magnitude follow the lens
 * galaxies': the look of a lens galaxy without its arcs. At (cx, cy); returns its detection-band
 * magnitude. */
static double lenssim__add_elliptical(const lenssim_dataset *ds, lenssim_rng *rng, lenssim__object *o, double cx, double cy) {
  double zl, sigma, zs, th, mag, R, n, e1, e2, q = 0.75 + 0.15 * lenssim_rng_normal(rng);
  q = q < 0.4 ? 0.4 : (q > 1.0 ? 1.0 : q);
  if (!lenssim__draw_deflector(ds, rng, 0.1, &zl, &sigma, &zs, &th)) {
    zl = lenssim__icdf_draw(ds->zl_icdf, lenssim_rng_uniform(rng));
    sigma = lenssim__icdf_draw(ds->sigma_icdf, lenssim_rng_uniform(rng));
  }
  lenssim__early_type_light(ds, rng, sigma, zl, 1.0, &mag, &R, &n);
  lenssim__draw_e(rng, q, &e1, &e2);
  return lenssim__add_sersic(ds, o, rng, -1, mag, lenssim__uniform(rng, 0.8, 1.0), R, n, e1, e2, cx, cy, zl);
}

/* The hard negative, a lens galaxy whose source is absent or not strongly lensed: a galaxy-
 * galaxy lens is drawn and selected exactly as a lens is (so that its deflector's redshift,
 * velocity dispersion and magnitude follow those of the lenses a survey finds), then its source is
 * taken away. Half of them (fixed per object) get it back elsewhere: centred 1.6-4 theta_E (at
 * least theta_E + 0.6") from the deflector, kept only if singly imaged and magnified less than
 * magnification_min (20 tries, else no source). theta_E in the label stays what the deflector's
 * Einstein radius is for the source's redshift. Returns 0 on a render error (err says it). */
static lenssim_result lenssim__count_and_magnify(const lenssim_dataset *ds, const lenssim__object *o, const lenssim_label *lab,
                                                 double *gx, double *A, void *rws, int *n_img, double *mu, lenssim_error *err);
static lenssim_result lenssim__lone_deflector(const lenssim_dataset *ds, lenssim_rng *rng, lenssim__object *o, lenssim_label *lab,
                                              double *gx, double *A, void *rws, lenssim_error *err) {
  size_t k, kept = 0;
  double th = lab->theta_E, zs = lab->z_source;
  int tries;
  for (k = 0; k < o->n_light; k++)
    if (o->group[k] != 0) {
      o->light[kept] = o->light[k];
      memcpy(o->scale[kept], o->scale[k], sizeof o->scale[k]);
      o->group[kept] = o->group[k];
      kept++;
    }
  o->n_light = kept;
  o->unlensed[0] = 0.0;
  lab->source_x = lab->source_y = lab->source_R = lab->source_n = 0.0;
  lab->source_clumpy = 0;
  lab->mag_source = 0.0;
  lab->z_source = 0.0;
  lab->magnification = 0.0;
  lab->n_images = 0;
  lab->arc_snr = lab->arc_snr1 = 0.0;
  if (!o->with_source) return LENSSIM_OK;
  for (tries = 0; tries < 20; tries++) {
    double r_in = 1.6 * th > th + 0.6 ? 1.6 * th : th + 0.6, r_out = 4.0 * th > r_in + 2.0 ? 4.0 * th : r_in + 2.0;
    double r = sqrt(lenssim__uniform(rng, r_in * r_in, r_out * r_out)), ang = lenssim__uniform(rng, 0.0, 2.0 * LENSSIM__PI), mu;
    int n_img;
    lenssim_result res;
    lenssim__add_source(ds, o, rng, 0, lenssim__source_magnitude_at(ds, rng, zs, 20.0, 27.5), lab->center_x + r * cos(ang),
                        lab->center_y + r * sin(ang), zs, lab);
    res = lenssim__count_and_magnify(ds, o, lab, gx, A, rws, &n_img, &mu, err);
    if (res != LENSSIM_OK) return res;
    if (n_img == 1 && mu < ds->config.magnification_min) {
      lab->z_source = zs;
      lab->n_images = 1;
      lab->magnification = mu;
      return LENSSIM_OK;
    }
    o->n_light = kept;
    o->unlensed[0] = 0.0;
  }
  lab->source_x = lab->source_y = lab->source_R = lab->source_n = 0.0;
  lab->source_clumpy = 0;
  lab->mag_source = 0.0;
  return LENSSIM_OK;
}

/* A disc galaxy: exponential-like Sersic (n 0.7-1.5), half of them clumpy, bluer colours. */
static double lenssim__add_disc(const lenssim_dataset *ds, lenssim_rng *rng, lenssim__object *o, double cx, double cy) {
  double mag = lenssim__uniform(rng, 19.0, 23.0), R = lenssim__uniform(rng, 0.4, 1.5), n = lenssim__uniform(rng, 0.7, 1.5);
  double e1, e2, t = lenssim__uniform(rng, 0.1, 0.6), z = lenssim__uniform(rng, 0.1, 1.0);
  lenssim__draw_e(rng, lenssim__uniform(rng, 0.2, 1.0), &e1, &e2);
  if (lenssim_rng_uniform(rng) < 0.5) return lenssim__add_clumpy(ds, o, rng, -1, mag, t, R, n, e1, e2, cx, cy, z);
  return lenssim__add_sersic(ds, o, rng, -1, mag, t, R, n, e1, e2, cx, cy, z);
}

/* (e1, e2) of axis ratio q with the major axis at angle phi. */
static void lenssim__e_at(double q, double phi, double *e1, double *e2) {
  double c = (1.0 - q) / (1.0 + q);
  *e1 = c * cos(2.0 * phi);
  *e2 = c * sin(2.0 * phi);
}

/* A spiral galaxy, whose arms are the arcs a finder must not call lensed: total VIS-like magnitude
 * 18.5-22.5 at z 0.1-0.8; a red bulge (n = 3, 10-35% of the light), an exponential disc of
 * half-light radius 0.6-1.8", and two (a third of the time three) logarithmic arms,
 * r = r0 exp(phi tan p) with pitch angle p of 12-25 degrees from 0.4 to 2.2 disc radii, as 8-12
 * blue knots each holding together 20-40% of the light; the whole inclined (axis ratio 0.45-1)
 * and rotated at random. Returns the detection-band magnitude (the disc's colour). */
static double lenssim__add_spiral(const lenssim_dataset *ds, lenssim_rng *rng, lenssim__object *o, double cx, double cy) {
  double mag = lenssim__uniform(rng, 18.5, 22.5), z = lenssim__uniform(rng, 0.1, 0.8), q = lenssim__uniform(rng, 0.45, 1.0);
  double rot = lenssim__uniform(rng, 0.0, LENSSIM__PI), Rd = lenssim__uniform(rng, 0.6, 1.8);
  double f_bulge = lenssim__uniform(rng, 0.10, 0.35), f_arms = lenssim__uniform(rng, 0.20, 0.40);
  double f_disc = 1.0 - f_bulge - f_arms, pitch = lenssim__uniform(rng, 12.0, 25.0) * LENSSIM__PI / 180.0;
  double e1, e2, det, scale[4], phi0 = lenssim__uniform(rng, 0.0, 2.0 * LENSSIM__PI);
  int arms = lenssim_rng_uniform(rng) < 1.0 / 3.0 ? 3 : 2, knots = 8 + (int)(5.0 * lenssim_rng_uniform(rng)), a, k;
  double per_knot = mag - 2.5 * log10(f_arms / (arms * knots)), r0 = 0.4 * Rd, r1 = 2.2 * Rd;
  double span = log(r1 / r0) / tan(pitch), sig = lenssim__uniform(rng, 0.06, 0.15);
  lenssim__e_at(q > 0.7 ? q : 0.7, rot, &e1, &e2);
  lenssim__add_sersic(ds, o, rng, -1, mag - 2.5 * log10(f_bulge), lenssim__uniform(rng, 0.8, 1.0),
                      lenssim__uniform(rng, 0.15, 0.4), 3.0, e1, e2, cx, cy, z);
  lenssim__e_at(q, rot, &e1, &e2);
  det = lenssim__add_sersic(ds, o, rng, -1, mag - 2.5 * log10(f_disc), lenssim__uniform(rng, 0.3, 0.5), Rd, 1.0, e1, e2,
                            cx, cy, z) + 2.5 * log10(f_disc);
  lenssim__colour_scales(ds, lenssim__uniform(rng, 0.0, 0.2), rng, scale);
  for (a = 0; a < arms; a++)
    for (k = 0; k < knots; k++) {
      double f = (k + 0.5 + 0.3 * lenssim_rng_normal(rng)) / knots, phi = f * span;
      double r = r0 * exp(phi * tan(pitch)), ang = phi0 + phi + 2.0 * LENSSIM__PI * a / arms;
      double u = r * cos(ang), v = q * r * sin(ang); /* in the disc's frame, inclined */
      lenssim__add_gaussian(ds, o, -1, per_knot + 0.3 * lenssim_rng_normal(rng), scale, sig,
                            cx + u * cos(rot) - v * sin(rot), cy + u * sin(rot) + v * cos(rot), z);
    }
  return det;
}

/* An edge-on disc: an exponential disc of half-light radius 0.8-2.5" seen at axis ratio
 * 0.08-0.22 and a bulge (n 2-4, 10-30% of the light, axis ratio 0.6-0.9) along the same axis;
 * total VIS-like magnitude 19-22.5, z 0.1-0.8. A straight streak of light is the other thing
 * besides an arc that a thin lensed image can be mistaken for. */
static double lenssim__add_edge_on(const lenssim_dataset *ds, lenssim_rng *rng, lenssim__object *o, double cx, double cy) {
  double mag = lenssim__uniform(rng, 19.0, 22.5), z = lenssim__uniform(rng, 0.1, 0.8), rot = lenssim__uniform(rng, 0.0, LENSSIM__PI);
  double f_bulge = lenssim__uniform(rng, 0.1, 0.3), e1, e2, det;
  lenssim__e_at(lenssim__uniform(rng, 0.08, 0.22), rot, &e1, &e2);
  det = lenssim__add_sersic(ds, o, rng, -1, mag - 2.5 * log10(1.0 - f_bulge), lenssim__uniform(rng, 0.3, 0.7),
                            lenssim__uniform(rng, 0.8, 2.5), 1.0, e1, e2, cx, cy, z) + 2.5 * log10(1.0 - f_bulge);
  lenssim__e_at(lenssim__uniform(rng, 0.6, 0.9), rot, &e1, &e2);
  lenssim__add_sersic(ds, o, rng, -1, mag - 2.5 * log10(f_bulge), lenssim__uniform(rng, 0.7, 1.0), lenssim__uniform(rng, 0.15, 0.4),
                      lenssim__uniform(rng, 2.0, 4.0), e1, e2, cx, cy, z);
  return det;
}

/* Line-of-sight galaxies in every field, lenses and non-lenses alike: Poisson in number with
 * N(< m) = N0 10^(0.3 (m - 24.5)) per square arcminute (the faint-count slope; N0 =
 * neighbour_density, 30 by default: Euclid's 30-40 galaxies per arcmin^2 to VIS 24.5, and the
 * 29 of the simulated LSST catalogue LensPop draws from) for 18 < m < 26 in VIS-like magnitudes,
 * uniform over a 24" x 24" square (the same sky in every layout) but not within 2.5" of the centre
 * (where the object under study is), each a Sersic (n 0.5-4, axis ratio 0.3-1) of the source
 * population's size-magnitude relation and a colour anywhere between the blue and red
 * templates. Unlensed foreground light (their redshifts are not modelled). */
static int lenssim__add_neighbours(const lenssim_dataset *ds, lenssim_rng *rng, lenssim__object *o) {
  double half = 12.0, area = 4.0 * half * half / 3600.0;
  double per_arcmin2 = ds->config.neighbour_density * (pow(10.0, 0.3 * 1.5) - pow(10.0, 0.3 * -6.5));
  int n = (int)lenssim_rng_poisson(rng, per_arcmin2 * area), i, added = 0;
  for (i = 0; i < n && o->n_light + 1 < LENSSIM_MAX_PROFILES; i++) {
    double x, y, mag = lenssim__source_magnitude(rng, 18.0, 26.0), e1, e2;
    do {
      x = lenssim__uniform(rng, -half, half);
      y = lenssim__uniform(rng, -half, half);
    } while (x * x + y * y < 2.5 * 2.5);
    lenssim__draw_e(rng, lenssim__uniform(rng, 0.3, 1.0), &e1, &e2);
    lenssim__add_sersic(ds, o, rng, -1, mag, lenssim_rng_uniform(rng), lenssim__source_size(rng, mag),
                        lenssim__uniform(rng, 0.5, 4.0), e1, e2, x, y, 0.5);
    added++;
  }
  return added;
}

static void lenssim__draw_nonlens(const lenssim_dataset *ds, lenssim_rng *rng, lenssim__object *o, lenssim_label *lab,
                                  lenssim_kind kind) {
  double cx = 0.1 * lenssim_rng_normal(rng), cy = 0.1 * lenssim_rng_normal(rng), scale[4];
  int i;
  switch (kind) {
    case LENSSIM_KIND_DISC:
      lab->mag_lens = lenssim__add_disc(ds, rng, o, cx, cy);
      break;
    case LENSSIM_KIND_SPIRAL:
      lab->mag_lens = lenssim__add_spiral(ds, rng, o, cx, cy);
      break;
    case LENSSIM_KIND_EDGE_ON_DISC:
      lab->mag_lens = lenssim__add_edge_on(ds, rng, o, cx, cy);
      break;
    case LENSSIM_KIND_PAIR: {
      double sep = lenssim__uniform(rng, 1.5, 4.0), ang = lenssim__uniform(rng, 0.0, LENSSIM__PI);
      double dx = 0.5 * sep * cos(ang), dy = 0.5 * sep * sin(ang);
      lab->mag_lens = lenssim_rng_uniform(rng) < 0.6 ? lenssim__add_elliptical(ds, rng, o, cx + dx, cy + dy)
                                                     : lenssim__add_disc(ds, rng, o, cx + dx, cy + dy);
      if (lenssim_rng_uniform(rng) < 0.6) lenssim__add_elliptical(ds, rng, o, cx - dx, cy - dy);
      else lenssim__add_disc(ds, rng, o, cx - dx, cy - dy);
      break;
    }
    case LENSSIM_KIND_RING_GALAXY: {
      /* a collisional ring galaxy (the Cartwheel's kind): a red nucleus and a blue ring of star-
       * forming knots, 1-2.5" in radius, often off-centre: a ring without a lens */
      double a = lenssim__uniform(rng, 1.0, 2.5), q = lenssim__uniform(rng, 0.6, 1.0), rot = lenssim__uniform(rng, 0.0, LENSSIM__PI);
      double m0 = lenssim__uniform(rng, 19.5, 22.0), ring_mag = m0 + lenssim__uniform(rng, -0.5, 1.0);
      int knots = 16 + (int)(9.0 * lenssim_rng_uniform(rng));
      double per_knot = ring_mag + 2.5 * log10((double)knots), sig = lenssim__uniform(rng, 0.08, 0.2);
      lab->mag_lens = lenssim__add_sersic(ds, o, rng, -1, m0, 0.8, lenssim__uniform(rng, 0.2, 0.5), 2.0, 0.0, 0.0,
                                          cx + 0.2 * a * lenssim_rng_normal(rng), cy + 0.2 * a * lenssim_rng_normal(rng), 0.1);
      lenssim__colour_scales(ds, lenssim__uniform(rng, 0.0, 0.3), rng, scale);
      for (i = 0; i < knots; i++) {
        double phi = 2.0 * LENSSIM__PI * (i + 0.3 * lenssim_rng_normal(rng)) / knots, r = 1.0 + 0.05 * lenssim_rng_normal(rng);
        double u = a * r * cos(phi), v = a * q * r * sin(phi);
        lenssim__add_gaussian(ds, o, -1, per_knot + 0.4 * lenssim_rng_normal(rng), scale, sig,
                              cx + u * cos(rot) - v * sin(rot), cy + u * sin(rot) + v * cos(rot), 0.1);
      }
      break;
    }
    case LENSSIM_KIND_MERGER: {
      /* two overlapping galaxies and two curved tidal tails of knots: arcs without a lens */
      double sep = lenssim__uniform(rng, 0.4, 1.2), ang = lenssim__uniform(rng, 0.0, 2.0 * LENSSIM__PI), tail_mag;
      double dx = 0.5 * sep * cos(ang), dy = 0.5 * sep * sin(ang);
      int t;
      lab->mag_lens = lenssim__add_elliptical(ds, rng, o, cx + dx, cy + dy);
      lenssim__add_disc(ds, rng, o, cx - dx, cy - dy);
      tail_mag = lab->mag_lens + lenssim__uniform(rng, 1.0, 2.5);
      lenssim__colour_scales(ds, lenssim__uniform(rng, 0.1, 0.5), rng, scale);
      for (t = 0; t < 2; t++) {
        double sx = t ? cx - dx : cx + dx, sy = t ? cy - dy : cy + dy, base = ang + (t ? LENSSIM__PI : 0.0);
        double len = lenssim__uniform(rng, 2.0, 4.0), curl = lenssim__uniform(rng, 0.5, 1.2) * (lenssim_rng_uniform(rng) < 0.5 ? -1 : 1);
        for (i = 1; i <= 10; i++) {
          double f = i / 10.0, r = len * f, phi = base + curl * f;
          lenssim__add_gaussian(ds, o, -1, tail_mag + 2.5 * log10(10.0) + 0.3 * lenssim_rng_normal(rng), scale,
                                0.1 + 0.1 * f, sx + r * cos(phi), sy + r * sin(phi), 0.1);
        }
      }
      break;
    }
    case LENSSIM_KIND_STAR:
    {
      /* a point source: a Gaussian half a render sample wide, which the samples catch whole, the PSF
       * doing the rest (one of 0.005" fell between the samples: most stars were blank sky, a few
       * 20 times too bright) */
      double off = lenssim__colour_scales(ds, lenssim_rng_uniform(rng), rng, scale), mag = lenssim__uniform(rng, 17.0, 23.0);
      lenssim__add_gaussian(ds, o, -1, mag, scale, 0.5 * lenssim__sample_spacing(ds), cx, cy, 0.1);
      lab->mag_lens = mag + off;
    }
      break;
    default: break; /* empty sky */
  }
}

/* ---- rendering an object -------------------------------------------------------------------- */
static void *lenssim__align64(void *p) {
  unsigned char *b = (unsigned char *)p;
  return b + ((64 - ((uintptr_t)b & 63)) & 63);
}

static void lenssim__object_model(const lenssim_dataset *ds, const lenssim__object *o, size_t n_mass, lenssim_lens_model *m) {
  memset(m, 0, sizeof *m);
  m->lenses = o->mass;
  m->num_lenses = n_mass;
  m->multi_plane = o->multi_plane;
  m->cosmology = ds->config.cosmology;
  m->z_source = o->z_source > 0 ? o->z_source : 1.0;
  m->z_source_convention = o->z_conv > 0 ? o->z_conv : m->z_source;
}

/* Renders part of the object in channel ch, noise-free, on the channel's render grid:
 * which = -1 the foreground light only, 0 or 1 that source plane only, 2 everything; with or
 * without the channel's PSF (lenssim__psf_part applies it afterwards: the same numbers). */
static lenssim_result lenssim__render_part(const lenssim_dataset *ds, const lenssim__object *o, int ch, int which,
                                          int with_psf, double *image, void *ws, size_t ws_bytes, lenssim_error *err) {
  lenssim_light fore[LENSSIM_MAX_PROFILES], back[LENSSIM_MAX_PROFILES];
  size_t nf = 0, nb = 0, k;
  lenssim_scene sc;
  lenssim__channel_scene(ds, ch, &sc);
  if (!with_psf) sc.psf.kind = LENSSIM_PSF_NONE;
  for (k = 0; k < o->n_light; k++) {
    lenssim_light l = o->light[k];
    int g = o->group[k];
    l.amp *= o->scale[k][ch];
    if (g < 0 && (which == -1 || which == 2)) fore[nf++] = l;
    if (g >= 0 && (which == 2 || which == g)) back[nb++] = l;
  }
  if (nb) lenssim__object_model(ds, o, o->n_mass, &sc.lens);
  sc.lens_light = fore;
  sc.num_lens_light = nf;
  sc.source_light = back;
  sc.num_source_light = nb;
  if (!nf && !nb) {
    memset(image, 0, sizeof(double) * (size_t)sc.grid.num_pix * (size_t)sc.grid.num_pix);
    return LENSSIM_OK;
  }
  return lenssim_render(&sc, image, ws, ws_bytes, err);
}

static lenssim_result lenssim__psf_part(const lenssim_dataset *ds, int ch, double *image, void *ws, lenssim_error *err) {
  lenssim_scene sc;
  lenssim__channel_scene(ds, ch, &sc);
  return lenssim_psf_convolve(&sc.psf, sc.grid.num_pix, sc.grid.pixel_scale, image, (double *)lenssim__align64(ws), err);
}

/* Number of images of the source-plane point (bx, by) for a source at z_src: the square of
 * half-width `half` about (cx, cy) is cut into LENSSIM__COUNT_GRID^2 cells of two triangles each,
 * their corners are ray-traced, and the triangles whose source-plane image contains the point
 * are counted. Triangles whose area shrinks less than 20-fold in the source plane (|mu| < 0.05,
 * the demagnified cores of singular profiles) are not counted; two images closer than a cell
 * may count as one. */
LENSSIM_API int lenssim_count_images(const lenssim_lens_model *m, double z_src, double bx, double by, double cx,
                                     double cy, double half, double *scratch) {
  const int n = LENSSIM__COUNT_GRID, w = n + 1;
  const size_t g = (size_t)w * (size_t)w;
  double *gx = scratch, *gy = scratch + g, *sx = scratch + 2 * g, *sy = scratch + 3 * g;
  double step = 2.0 * half / n, cell = 0.5 * step * step;
  int i, j, count = 0;
  for (i = 0; i < w; i++)
    for (j = 0; j < w; j++) {
      /* an irrational offset keeps the grid's corners off the lens centres */
      gx[i * w + j] = cx - half + (j + 0.31415926) * step;
      gy[i * w + j] = cy - half + (i + 0.27182818) * step;
    }
  if (lenssim_ray_shoot(m, z_src, (size_t)w * (size_t)w, gx, gy, sx, sy, NULL) != LENSSIM_OK) return 0;
  for (i = 0; i < n; i++)
    for (j = 0; j < n; j++) {
      int c[2][3], t;
      c[0][0] = i * w + j; c[0][1] = i * w + j + 1; c[0][2] = (i + 1) * w + j + 1;
      c[1][0] = i * w + j; c[1][1] = (i + 1) * w + j + 1; c[1][2] = (i + 1) * w + j;
      for (t = 0; t < 2; t++) {
        double ax = sx[c[t][0]], ay = sy[c[t][0]], bxv = sx[c[t][1]], byv = sy[c[t][1]], cxv = sx[c[t][2]], cyv = sy[c[t][2]];
        double area = 0.5 * ((bxv - ax) * (cyv - ay) - (cxv - ax) * (byv - ay));
        double d1 = (bxv - ax) * (by - ay) - (byv - ay) * (bx - ax);
        double d2 = (cxv - bxv) * (by - byv) - (cyv - byv) * (bx - bxv);
        double d3 = (ax - cxv) * (by - cyv) - (ay - cyv) * (bx - cxv);
        if (fabs(area) > 20.0 * cell) continue;
        if ((d1 >= 0 && d2 >= 0 && d3 >= 0) || (d1 <= 0 && d2 <= 0 && d3 <= 0)) count++;
      }
    }
  return count;
}

/* The channel's noise, its sky per render pixel following the render's pixel area. */
static lenssim_noise lenssim__channel_noise(const lenssim_dataset *ds, int ch) {
  lenssim_noise nz = lenssim__band_noise_at(ds->band[ch], ds->render_scale[ch]);
  nz.exposure_time *= ds->config.exposure_scale;
  return nz;
}

/* S/N of lensed light as LensPop (Collett 2015) measures it: the pixels taken in decreasing
 * order of S/sigma, the best cumulative sum(S)/sqrt(sum sigma^2). Sorting every image would cost
 * more than rendering it, so the pixels are binned by S/sigma (32 bins per decade from 0.01 to
 * 1e6) and the running sums are scanned from the top bin down: the best threshold to within a
 * bin (7 %); pixels with S/sigma below 0.01 never help and are left out. */
#define LENSSIM__SNR_BINS 256
LENSSIM_API double lenssim_arc_snr(const lenssim_noise *noise, const double *signal, const double *background, size_t count) {
  double t = noise->exposure_time, sky = noise->sky_rate * t;
  double read2 = noise->read_noise * noise->read_noise * (noise->num_exposures > 0 ? noise->num_exposures : 1);
  double bin_s[LENSSIM__SNR_BINS], bin_v[LENSSIM__SNR_BINS], s_sum = 0.0, v_sum = 0.0, best = 0.0;
  size_t i;
  int k;
  if (!(t > 0) || !signal) return 0.0;
  memset(bin_s, 0, sizeof bin_s);
  memset(bin_v, 0, sizeof bin_v);
  for (i = 0; i < count; i++) {
    double sig = signal[i] * t, b = background ? background[i] * t : 0.0, var, r;
    if (!(sig > 0)) continue;
    var = sig + (b > 0 ? b : 0) + sky + read2;
    if (!(var > 0)) continue;
    r = sig / sqrt(var);
    if (r < 0.01) continue;
    k = (int)(32.0 * (log10(r) + 2.0));
    if (k >= LENSSIM__SNR_BINS) k = LENSSIM__SNR_BINS - 1;
    bin_s[k] += sig;
    bin_v[k] += var;
  }
  for (k = LENSSIM__SNR_BINS - 1; k >= 0; k--) {
    s_sum += bin_s[k];
    v_sum += bin_v[k];
    if (v_sum > 0 && s_sum / sqrt(v_sum) > best) best = s_sum / sqrt(v_sum);
  }
  return best;
}

static double lenssim__arc_snr(const lenssim_dataset *ds, int ch, const double *src, const double *fore, size_t count) {
  lenssim_noise nz = lenssim__channel_noise(ds, ch);
  return lenssim_arc_snr(&nz, src, fore, count);
}

static double lenssim__sum(const double *a, size_t n) {
  double s = 0.0;
  size_t i;
  for (i = 0; i < n; i++) s += a[i];
  return s;
}

/* Render grid -> output pixels: copy, k x k sums, or bilinear resampling with the flux per pixel
 * divided by k^2 (counts/s per output pixel in every case). */
static void lenssim__to_output(const lenssim_dataset *ds, int ch, const double *img, float *out) {
  int N = ds->num_pix, M = ds->render_pix[ch], k = ds->factor[ch], i, j, a, b;
  if (ds->mode[ch] == 1) {
    for (i = 0; i < N; i++)
      for (j = 0; j < N; j++) {
        double s = 0.0;
        for (a = 0; a < k; a++)
          for (b = 0; b < k; b++) s += img[(size_t)(i * k + a) * (size_t)M + (size_t)(j * k + b)];
        out[(size_t)i * N + j] = (float)s;
      }
  } else if (ds->mode[ch] == 2) {
    double ratio = ds->pixel_scale / ds->render_scale[ch], inv = 1.0 / ((double)k * k);
    for (i = 0; i < N; i++) {
      double v = (i - 0.5 * (N - 1)) * ratio + 0.5 * (M - 1), fv;
      int i0;
      if (v < 0) v = 0;
      if (v > M - 1) v = M - 1;
      i0 = (int)v; if (i0 > M - 2) i0 = M - 2;
      fv = v - i0;
      for (j = 0; j < N; j++) {
        double u = (j - 0.5 * (N - 1)) * ratio + 0.5 * (M - 1), fu, val;
        int j0;
        if (u < 0) u = 0;
        if (u > M - 1) u = M - 1;
        j0 = (int)u; if (j0 > M - 2) j0 = M - 2;
        fu = u - j0;
        val = (1 - fv) * ((1 - fu) * img[(size_t)i0 * M + j0] + fu * img[(size_t)i0 * M + j0 + 1]) +
              fv * ((1 - fu) * img[(size_t)(i0 + 1) * M + j0] + fu * img[(size_t)(i0 + 1) * M + j0 + 1]);
        out[(size_t)i * N + j] = (float)(val * inv);
      }
    }
  } else {
    size_t c = (size_t)N * N, p;
    for (p = 0; p < c; p++) out[p] = (float)img[p];
  }
}

/* ---- sampling ------------------------------------------------------------------------------- */
static int lenssim__kind_is_lens(lenssim_kind k) {
  return k == LENSSIM_KIND_GALAXY_GALAXY || k == LENSSIM_KIND_COMPOUND_ARC || k == LENSSIM_KIND_DOUBLE_RING ||
         k == LENSSIM_KIND_NO_SUBSTRUCTURE || k == LENSSIM_KIND_SUBHALOS || k == LENSSIM_KIND_VORTEX;
}

static int lenssim__kind_allowed(lenssim_preset p, lenssim_kind k) {
  switch (p) {
    case LENSSIM_PRESET_DEEPLENSE_SUBSTRUCTURE:
      return k == LENSSIM_KIND_NO_SUBSTRUCTURE || k == LENSSIM_KIND_SUBHALOS || k == LENSSIM_KIND_VORTEX;
    case LENSSIM_PRESET_ENSAI_MODELLING: return k == LENSSIM_KIND_GALAXY_GALAXY;
    default: return (int)k >= 0 && k <= LENSSIM_KIND_DOUBLE_RING;
  }
}

/* The draw of one attempt; 0 if the population gave nothing (very rare). */
static int lenssim__draw_kind(const lenssim_dataset *ds, lenssim_rng *rng, lenssim__object *o, lenssim_label *lab,
                              lenssim_kind kind) {
  switch (kind) {
    case LENSSIM_KIND_GALAXY_GALAXY:
      if (ds->config.preset == LENSSIM_PRESET_ENSAI_MODELLING)
        return lenssim__draw_uniform_lens(ds, rng, o, lab, 0.3, 2.0, 0.0, 0.8, 0.5, 2.0, 21.0, 24.0);
      return lenssim__draw_galaxy_galaxy(ds, rng, o, lab);
    case LENSSIM_KIND_COMPOUND_ARC: return lenssim__draw_compound_arc(ds, rng, o, lab);
    case LENSSIM_KIND_DOUBLE_RING: return lenssim__draw_double_ring(ds, rng, o, lab);
    case LENSSIM_KIND_ELLIPTICAL: return lenssim__draw_galaxy_galaxy(ds, rng, o, lab); /* its source goes afterwards */
    case LENSSIM_KIND_NO_SUBSTRUCTURE: case LENSSIM_KIND_SUBHALOS: case LENSSIM_KIND_VORTEX:
      return lenssim__draw_deeplense(ds, rng, o, lab);
    default:
      lenssim__draw_nonlens(ds, rng, o, lab, kind);
      return 1;
  }
}


/* Images of source plane 0's centre and its magnification (detection band, before the PSF). */
static lenssim_result lenssim__count_and_magnify(const lenssim_dataset *ds, const lenssim__object *o, const lenssim_label *lab,
                                                 double *gx, double *A, void *rws, int *n_img, double *mu, lenssim_error *err) {
  lenssim_lens_model model;
  int det = ds->detection_channel;
  size_t det_count = (size_t)ds->render_pix[det] * (size_t)ds->render_pix[det];
  double half = hypot(o->src_x[0] - lab->center_x, o->src_y[0] - lab->center_y) + 1.5 * lab->theta_E + 0.5;
  lenssim_result r;
  lenssim__object_model(ds, o, o->n_mass, &model);
  *n_img = lenssim_count_images(&model, o->z_group[0], o->src_x[0], o->src_y[0], lab->center_x, lab->center_y, half, gx);
  if ((r = lenssim__render_part(ds, o, det, 0, 0, A, rws, ds->render_bytes, err)) != LENSSIM_OK) return r;
  *mu = o->unlensed[0] > 0 ? lenssim__sum(A, det_count) / o->unlensed[0] : 0.0;
  return LENSSIM_OK;
}

LENSSIM_API lenssim_result lenssim_dataset_sample_kind(const lenssim_dataset *ds, uint64_t index, lenssim_kind kind,
                                                       float *image, lenssim_label *label, void *workspace,
                                                       size_t workspace_bytes, lenssim_error *err) {
  lenssim__object *o;
  lenssim_label lab;
  lenssim_rng rng, rng_sub;
  lenssim_result r = LENSSIM_OK;
  void *owned = NULL, *rws;
  double *A, *B, *C, *D, *gx;
  size_t max_pix2 = 0, det_count, grid = (size_t)(LENSSIM__COUNT_GRID + 1) * (LENSSIM__COUNT_GRID + 1);
  int ch, det, attempt, max_tries, lone, accepted = 0, is_lens, substructure = 0, have_parts = 0;
  lenssim__object obj_storage;
  char num[24];

  if (!ds || !image || !label) return lenssim__fail(err, LENSSIM_ERR_ARG, "dataset sample: the data set, the image and the label are required (NULL given)");
  if (!lenssim__kind_allowed(ds->config.preset, kind))
    return lenssim__fail(err, LENSSIM_ERR_ARG, "dataset sample: kind '%s' does not belong to preset '%s'",
                         lenssim_kind_name(kind), lenssim_preset_name(ds->config.preset));
  if (!workspace) {
    owned = LENSSIM_MALLOC(ds->workspace_bytes);
    if (!owned) return lenssim__fail(err, LENSSIM_ERR_NOMEM, "dataset sample: out of memory (%lu bytes)", (unsigned long)ds->workspace_bytes);
    workspace = owned;
  } else if (workspace_bytes < ds->workspace_bytes) {
    return lenssim__fail(err, LENSSIM_ERR_WORKSPACE, "dataset sample: workspace of %lu bytes, %lu needed",
                         (unsigned long)workspace_bytes, (unsigned long)ds->workspace_bytes);
  }
  for (ch = 0; ch < ds->channels; ch++) {
    size_t p2 = (size_t)ds->render_pix[ch] * (size_t)ds->render_pix[ch];
    if (p2 > max_pix2) max_pix2 = p2;
  }
  A = (double *)lenssim__align64(workspace);
  B = A + max_pix2;
  C = B + max_pix2;
  D = C + max_pix2;
  gx = D + max_pix2;
  rws = gx + 4 * grid;
  o = &obj_storage;
  det = ds->detection_channel;
  det_count = (size_t)ds->render_pix[det] * (size_t)ds->render_pix[det];
  is_lens = lenssim__kind_is_lens(kind);
  lone = kind == LENSSIM_KIND_ELLIPTICAL;
  lenssim_rng_seed(&rng, lenssim__hash3(ds->seed, index, 1));
  lenssim_rng_seed(&rng_sub, lenssim__hash3(ds->seed, index, 3));

  max_tries = kind == LENSSIM_KIND_COMPOUND_ARC || kind == LENSSIM_KIND_DOUBLE_RING ? LENSSIM__MAX_TRIES_TWO_PLANES : LENSSIM__MAX_TRIES;
  for (attempt = 1; attempt <= max_tries && !accepted; attempt++) {
    lenssim_lens_model model;
    int groups, n0, n1 = -1;
    double half, fwhm = ds->band[det]->psf_fwhm * ds->config.psf_scale, mu0, mu1 = 0.0, snr;
    memset(o, 0, sizeof *o);
    memset(&lab, 0, sizeof lab);
    o->with_source = lenssim__hash_uniform(ds->seed, index, 9) < 0.5;
    lab.n_images2 = -1;
    if (!lenssim__draw_kind(ds, &rng, o, &lab, kind)) continue;
    o->n_main_mass = o->n_mass;
    if (o->z_group[0] == 0) o->z_group[0] = o->z_source;
    if (!is_lens && !lone) {
      accepted = 1;
      break;
    }
    if (ds->config.preset == LENSSIM_PRESET_DEEPLENSE_SUBSTRUCTURE) { /* Model I selects nothing */
      if ((r = lenssim__count_and_magnify(ds, o, &lab, gx, A, rws, &lab.n_images, &lab.magnification, err)) != LENSSIM_OK)
        goto done;
      if ((r = lenssim__psf_part(ds, det, A, rws, err)) != LENSSIM_OK) goto done;
      lab.arc_snr = lenssim__arc_snr(ds, det, A, NULL, det_count);
      accepted = 1;
      break;
    }
    /* selection (Collett 2015's criteria, as his LensPop code applies them): multiply imaged,
     * resolved (2 theta_E^2 >= (2 R_s)^2 + FWHM^2: ModelAll.py's bfac = rfac = 2 in
     * StochasticObserving.py's SeeingTest), magnified (mu >= magnification_min), tangentially
     * resolved (mu R_s > FWHM, SignaltoNoise.py), bright enough (arc S/N >= snr_min); with two source planes each
     * plane's images must pass on their own: multiply imaged, magnified and S/N >= snr_min with
     * the other plane's light counted as noise */
    groups = o->z_group[1] > 0 ? 2 : 1;
    lenssim__object_model(ds, o, o->n_mass, &model);
    half = 2.5 * (lab.theta_E > lab.theta_E2 ? lab.theta_E : lab.theta_E2) + 0.5;
    n0 = lenssim_count_images(&model, o->z_group[0], o->src_x[0], o->src_y[0], lab.center_x, lab.center_y, half, gx);
    if (n0 < 2) continue;
    if (groups == 2) {
      n1 = lenssim_count_images(&model, o->z_group[1], o->src_x[1], o->src_y[1], lab.center_x, lab.center_y, half, gx);
      if (n1 < 2) continue;
    }
    if (!(2.0 * lab.theta_E * lab.theta_E >= 4.0 * lab.source_R * lab.source_R + fwhm * fwhm)) continue;
    /* magnification from the render before the PSF (all the lensed flux in the field) */
    if ((r = lenssim__render_part(ds, o, det, 0, 0, A, rws, ds->render_bytes, err)) != LENSSIM_OK) goto done;
    mu0 = lenssim__sum(A, det_count) / o->unlensed[0];
    if (mu0 < ds->config.magnification_min) continue;
    /* tangentially resolved: the magnified source is larger than the PSF */
    if (!(mu0 * lab.source_R > fwhm)) continue;
    if (groups == 2) {
      if ((r = lenssim__render_part(ds, o, det, 1, 0, B, rws, ds->render_bytes, err)) != LENSSIM_OK) goto done;
      mu1 = lenssim__sum(B, det_count) / o->unlensed[1];
      if (mu1 < ds->config.magnification_min) continue;
      if ((r = lenssim__psf_part(ds, det, B, rws, err)) != LENSSIM_OK) goto done;
    }
    if ((r = lenssim__psf_part(ds, det, A, rws, err)) != LENSSIM_OK) goto done;
    /* lens light only adds noise: without it the S/N is an upper bound, a cheap early exit */
    {
      size_t p;
      for (p = 0; p < det_count; p++) D[p] = groups == 2 ? A[p] + B[p] : A[p];
    }
    if (lenssim__arc_snr(ds, det, D, NULL, det_count) < ds->config.snr_min) continue;
    if (groups == 2 && (lenssim__arc_snr(ds, det, A, NULL, det_count) < ds->config.snr_min ||
                        lenssim__arc_snr(ds, det, B, NULL, det_count) < ds->config.snr_min))
      continue;
    if ((r = lenssim__render_part(ds, o, det, -1, 1, C, rws, ds->render_bytes, err)) != LENSSIM_OK) goto done;
    snr = lenssim__arc_snr(ds, det, D, C, det_count);
    if (snr < ds->config.snr_min) continue;
    if (groups == 2) {
      size_t p;
      /* each plane over the lens light and the other plane */
      for (p = 0; p < det_count; p++) D[p] = C[p] + B[p];
      lab.arc_snr1 = lenssim__arc_snr(ds, det, A, D, det_count);
      for (p = 0; p < det_count; p++) D[p] = C[p] + A[p];
      lab.arc_snr2 = lenssim__arc_snr(ds, det, B, D, det_count);
      if (lab.arc_snr1 < ds->config.snr_min || lab.arc_snr2 < ds->config.snr_min) continue;
      for (p = 0; p < det_count; p++) A[p] += B[p];
    } else {
      lab.arc_snr1 = snr;
    }
    lab.n_images = n0; lab.n_images2 = n1;
    lab.magnification = mu0; lab.magnification2 = mu1;
    lab.arc_snr = snr;
    have_parts = 1;
    accepted = 1;
    break;
  }
  if (!accepted) {
    r = lenssim__fail(err, LENSSIM_ERR_RANGE,
                      "dataset sample %s: the selection accepted none of %d draws of a '%s' (relax the theta_E window, snr_min or magnification_min)",
                      lenssim__u64_text((uint64_t)index, num), max_tries, lenssim_kind_name(kind));
    goto done;
  }
  lab.attempts = attempt;
  if (lone) {
    if ((r = lenssim__lone_deflector(ds, &rng, o, &lab, gx, A, rws, err)) != LENSSIM_OK) goto done;
    have_parts = 0;
  }
  if (kind == LENSSIM_KIND_SUBHALOS || kind == LENSSIM_KIND_VORTEX) {
    lenssim__add_substructure(ds, &rng_sub, o, &lab, kind);
    substructure = 1;
  }
  if ((ds->config.preset == LENSSIM_PRESET_EUCLID_LENSFINDING || ds->config.preset == LENSSIM_PRESET_EUCLID_COMPOUND) &&
      ds->config.neighbour_density > 0) {
    lenssim_rng rng_field;
    lenssim_rng_seed(&rng_field, lenssim__hash3(ds->seed, index, 5));
    lab.n_neighbours = lenssim__add_neighbours(ds, &rng_field, o);
    if (lab.n_neighbours) have_parts = 0; /* the detection channel's lens light lacks them */
  }
  for (ch = 0; ch < ds->channels; ch++) {
    size_t count = (size_t)ds->render_pix[ch] * (size_t)ds->render_pix[ch], p;
    double *img = C;
    if (ch == det && have_parts && !substructure) {
      for (p = 0; p < count; p++) C[p] += A[p];
    } else if ((r = lenssim__render_part(ds, o, ch, 2, 1, C, rws, ds->render_bytes, err)) != LENSSIM_OK) {
      goto done;
    }
    if (!ds->config.noise_free && ds->config.preset != LENSSIM_PRESET_DEEPLENSE_SUBSTRUCTURE) {
      lenssim_noise nz = lenssim__channel_noise(ds, ch);
      lenssim_rng noise_rng;
      lenssim_rng_seed(&noise_rng, lenssim__hash3(ds->seed, index, 16 + (uint64_t)ch));
      lenssim_add_noise(&nz, img, count, &noise_rng);
    }
    lenssim__to_output(ds, ch, img, image + (size_t)ch * (size_t)ds->num_pix * (size_t)ds->num_pix);
    if (!ds->config.noise_free && ds->config.preset == LENSSIM_PRESET_DEEPLENSE_SUBSTRUCTURE) {
      lenssim_rng noise_rng;
      lenssim_rng_seed(&noise_rng, lenssim__hash3(ds->seed, index, 16 + (uint64_t)ch));
      lenssim__deeplense_noise(ds, image + (size_t)ch * (size_t)ds->num_pix * (size_t)ds->num_pix,
                               (size_t)ds->num_pix * (size_t)ds->num_pix, &noise_rng);
    }
  }
  lab.kind = kind;
  lab.label = lenssim__kind_class(kind);
  *label = lab;
done:
  if (owned) LENSSIM_FREE(owned);
  return r;
}

LENSSIM_API lenssim_result lenssim_dataset_sample(const lenssim_dataset *ds, uint64_t index, float *image,
                                                  lenssim_label *label, void *workspace, size_t workspace_bytes,
                                                  lenssim_error *err) {
  if (!ds) return lenssim__fail(err, LENSSIM_ERR_ARG, "dataset sample: no data set given (NULL)");
  return lenssim_dataset_sample_kind(ds, index, lenssim_dataset_kind(ds, index), image, label, workspace, workspace_bytes, err);
}

/* ---- survey fields ---------------------------------------------------------------------------- */
/* Streams of the field's own random numbers (object streams use small numbers per index). */
#define LENSSIM__FIELD_INDEX 0xf1e1d0f1e1d0f1e1ULL
#define LENSSIM__FIELD_PLACE 1
#define LENSSIM__FIELD_NOISE 16
#define LENSSIM__FIELD_TRIES 10000

LENSSIM_API lenssim_result lenssim_field_init(lenssim_field *f, const lenssim_field_config *config, uint64_t seed,
                                              lenssim_error *err) {
  lenssim_field_config c;
  lenssim_dataset_config pop;
  lenssim_result r;
  if (!f || !config) return lenssim__fail(err, LENSSIM_ERR_ARG, "field: NULL argument");
  c = *config;
  if (c.population.preset != LENSSIM_PRESET_EUCLID_LENSFINDING && c.population.preset != LENSSIM_PRESET_EUCLID_COMPOUND)
    return lenssim__fail(err, LENSSIM_ERR_ARG, "field: preset '%s' has no lenses and non-lenses to place; use euclid-lensfinding or euclid-compound",
                         lenssim_preset_name(c.population.preset));
  if (!c.size) c.size = 600;
  if (!c.lenses) c.lenses = 8;
  if (!c.others) c.others = 100;
  if (c.lenses < 0) c.lenses = 0;
  if (c.others < 0) c.others = 0;
  pop = c.population;
  pop.noise_free = 1;
  memset(f, 0, sizeof *f);
  if ((r = lenssim_dataset_init(&f->population, &pop, seed, err)) != LENSSIM_OK) return r;
  if (c.lens_spacing <= 0) c.lens_spacing = f->population.num_pix;
  /* placement looks through the population for objects of each class, about 1/lens_fraction
   * (1/(1 - lens_fraction)) objects a look: a share of 0 or 1 would look for ever */
  if ((c.lenses > 0 && !(f->population.config.lens_fraction >= 1e-6)) || (c.others > 0 && !(f->population.config.lens_fraction <= 1 - 1e-6)))
    return lenssim__fail(err, LENSSIM_ERR_RANGE, "field: the population's lens_fraction = %g has no %s to place; a field's "
                         "counts are its lenses and others", f->population.config.lens_fraction, c.lenses > 0 &&
                         !(f->population.config.lens_fraction >= 1e-6) ? "lenses" : "non-lenses");
  if (c.size < f->population.num_pix || c.size > LENSSIM_MAX_PIXELS)
    return lenssim__fail(err, LENSSIM_ERR_RANGE, "field: size %d must be from the stamp side %d to %d pixels", c.size,
                         f->population.num_pix, LENSSIM_MAX_PIXELS);
  if ((double)c.lenses + c.others > LENSSIM_FIELD_MAX_OBJECTS)
    return lenssim__fail(err, LENSSIM_ERR_RANGE, "field: %d lenses and %d others, at most %d objects", c.lenses, c.others,
                         LENSSIM_FIELD_MAX_OBJECTS);
  f->config = c;
  f->seed = seed;
  f->channels = f->population.channels;
  f->size = c.size;
  f->stamp = f->population.num_pix;
  f->pixel_scale = f->population.pixel_scale;
  f->object_count = (size_t)c.lenses + (size_t)c.others;
  return LENSSIM_OK;
}

LENSSIM_API size_t lenssim_field_image_floats(const lenssim_field *f) {
  return (size_t)f->channels * (size_t)f->size * (size_t)f->size;
}

/* Whether a stamp centred at (x, y) keeps `least` from every lens among objects[0..n). */
static int lenssim__field_clear(const lenssim_field_object *objects, size_t n, double x, double y, double least) {
  size_t k;
  for (k = 0; k < n; k++) {
    double dx = objects[k].x - x, dy = objects[k].y - y;
    if (objects[k].label == 1 && dx * dx + dy * dy < least * least) return 0;
  }
  return 1;
}

LENSSIM_API lenssim_result lenssim_field_place(const lenssim_field *f, lenssim_field_object *objects, lenssim_error *err) {
  lenssim_rng rng;
  uint64_t index = 0;
  size_t placed = 0, lenses;
  double half, room;
  if (!f || !objects) return lenssim__fail(err, LENSSIM_ERR_ARG, "field: NULL argument");
  lenses = (size_t)f->config.lenses;
  half = 0.5 * (f->stamp - 1);
  room = (double)(f->size - f->stamp + 1);
  lenssim_rng_seed(&rng, lenssim__hash3(f->seed, LENSSIM__FIELD_INDEX, LENSSIM__FIELD_PLACE));
  while (placed < f->object_count) {
    int want_lens = placed < lenses, tries;
    lenssim_field_object *o = &objects[placed];
    /* the next object of the population of the class wanted (about 1/lens_fraction looks each) */
    while (lenssim__kind_is_lens(lenssim_dataset_kind(&f->population, index)) != want_lens) index++;
    for (tries = 0; tries < LENSSIM__FIELD_TRIES; tries++) {
      int sx = (int)(lenssim_rng_uniform(&rng) * room), sy = (int)(lenssim_rng_uniform(&rng) * room);
      double least = want_lens ? f->config.lens_spacing : 0.5 * f->stamp;
      if (!lenssim__field_clear(objects, placed < lenses ? placed : lenses, sx + half, sy + half, least)) continue;
      o->index = index++;
      o->label = want_lens;
      o->stamp_x = sx;
      o->stamp_y = sy;
      o->x = sx + half;
      o->y = sy + half;
      break;
    }
    if (tries == LENSSIM__FIELD_TRIES)
      return lenssim__fail(err, LENSSIM_ERR_RANGE, "field: no room for object %lu (%s) in a %dx%d field after %d draws; "
                           "fewer lenses or others, a smaller lens_spacing (lenssim_field_config) or a larger field", (unsigned long)placed, want_lens ? "a lens" : "a non-lens",
                           f->size, f->size, LENSSIM__FIELD_TRIES);
    placed++;
  }
  return LENSSIM_OK;
}

LENSSIM_API lenssim_result lenssim_field_render_object(const lenssim_field *f, lenssim_field_object *obj, float *stamp,
                                                       lenssim_label *label, void *workspace, size_t workspace_bytes,
                                                       lenssim_error *err) {
  lenssim_label lab;
  lenssim_result r;
  double half;
  if (!f || !obj || !stamp) return lenssim__fail(err, LENSSIM_ERR_ARG, "field: NULL argument");
  r = lenssim_dataset_sample(&f->population, obj->index, stamp, &lab, workspace, workspace_bytes, err);
  if (r != LENSSIM_OK) return r;
  half = 0.5 * (f->stamp - 1);
  obj->x = obj->stamp_x + half + lab.center_x / f->pixel_scale;
  obj->y = obj->stamp_y + half + lab.center_y / f->pixel_scale;
  if (label) *label = lab;
  return LENSSIM_OK;
}

LENSSIM_API void lenssim_field_add(const lenssim_field *f, const lenssim_field_object *obj, const float *stamp, double *sum) {
  size_t n = (size_t)f->size, s = (size_t)f->stamp, c, i, j;
  for (c = 0; c < (size_t)f->channels; c++)
    for (i = 0; i < s; i++) {
      double *row = sum + (c * n + (size_t)obj->stamp_y + i) * n + (size_t)obj->stamp_x;
      const float *src = stamp + (c * s + i) * s;
      for (j = 0; j < s; j++) row[j] += src[j];
    }
}

/* The noise of one output pixel of channel ch (see "Simulated survey fields"). */
static lenssim_noise lenssim__field_noise(const lenssim_field *f, int ch) {
  const lenssim_dataset *ds = &f->population;
  lenssim_noise nz = lenssim__band_noise_at(ds->band[ch], ds->pixel_scale);
  nz.exposure_time *= ds->config.exposure_scale;
  if (ds->mode[ch] == 1) nz.read_noise *= ds->factor[ch];
  return nz;
}

LENSSIM_API void lenssim_field_finish(const lenssim_field *f, double *sum, float *image) {
  size_t plane = (size_t)f->size * (size_t)f->size, k;
  int ch;
  for (ch = 0; ch < f->channels; ch++) {
    double *p = sum + (size_t)ch * plane;
    if (!f->config.population.noise_free) {
      lenssim_noise nz = lenssim__field_noise(f, ch);
      lenssim_rng rng;
      lenssim_rng_seed(&rng, lenssim__hash3(f->seed, LENSSIM__FIELD_INDEX, LENSSIM__FIELD_NOISE + (uint64_t)ch));
      lenssim_add_noise(&nz, p, plane, &rng);
    }
    for (k = 0; k < plane; k++) image[(size_t)ch * plane + k] = (float)p[k];
  }
}

LENSSIM_API lenssim_result lenssim_field_render(const lenssim_field *f, float *image, lenssim_field_object *objects,
                                                lenssim_label *labels, lenssim_error *err) {
  size_t floats, k, stamp_floats, bytes;
  double *sum;
  float *stamp;
  void *ws;
  lenssim_result r;
  if (!f || !image || !objects) return lenssim__fail(err, LENSSIM_ERR_ARG, "field: NULL argument");
  if ((r = lenssim_field_place(f, objects, err)) != LENSSIM_OK) return r;
  floats = lenssim_field_image_floats(f);
  stamp_floats = lenssim_dataset_image_floats(&f->population);
  bytes = lenssim_dataset_workspace_bytes(&f->population);
  sum = (double *)LENSSIM_MALLOC(floats * sizeof(double));
  stamp = (float *)LENSSIM_MALLOC(stamp_floats * sizeof(float));
  ws = LENSSIM_MALLOC(bytes);
  if (!sum || !stamp || !ws) {
    r = lenssim__fail(err, LENSSIM_ERR_NOMEM, "field: out of memory (%lu pixels)", (unsigned long)floats);
  } else {
    for (k = 0; k < floats; k++) sum[k] = 0.0;
    for (k = 0; k < f->object_count && r == LENSSIM_OK; k++) {
      r = lenssim_field_render_object(f, &objects[k], stamp, labels ? &labels[k] : NULL, ws, bytes, err);
      if (r == LENSSIM_OK) lenssim_field_add(f, &objects[k], stamp, sum);
    }
    if (r == LENSSIM_OK) lenssim_field_finish(f, sum, image);
  }
  if (sum) LENSSIM_FREE(sum);
  if (stamp) LENSSIM_FREE(stamp);
  if (ws) LENSSIM_FREE(ws);
  return r;
}

/* ---- training windows cut from a field ------------------------------------------------------- */
/* The index of the windows' random streams: window n draws from hash3(seed, this, n). */
#define LENSSIM__FIELD_WINDOWS 0xf1e1d0f1e1d0f1e2ULL
#define LENSSIM__FIELD_WINDOW_SHARES 0xf1e1d0f1e1d0f1e3ULL

/* A share or distance of lenssim_window_config: 0 is the default, a negative value 0. */
static double lenssim__window_value(double v, double def) { return v == 0 ? def : (v < 0 ? 0.0 : v); }

LENSSIM_API lenssim_result lenssim_field_windows_resolve(const lenssim_field *f, const lenssim_window_config *config,
                                                         lenssim_window_config *resolved, lenssim_error *err) {
  lenssim_window_config c;
  double half;
  if (!f || !config || !resolved) return lenssim__fail(err, LENSSIM_ERR_ARG, "field windows: NULL argument");
  half = 0.5 * (f->stamp - 1);
  c.max_offset = lenssim__window_value(config->max_offset, 8.0);
  c.lens_fraction = lenssim__window_value(config->lens_fraction, 0.5);
  c.clear = lenssim__window_value(config->clear, 2.0 * c.max_offset);
  c.centred_fraction = lenssim__window_value(config->centred_fraction, 0.5);
  if (!(c.lens_fraction <= 1) || !(c.centred_fraction <= 1))
    return lenssim__fail(err, LENSSIM_ERR_RANGE, "field windows: lens_fraction = %g and centred_fraction = %g must be shares, 0..1",
                         c.lens_fraction, c.centred_fraction);
  if (!(c.max_offset <= half))
    return lenssim__fail(err, LENSSIM_ERR_RANGE, "field windows: max_offset = %g pixels would take the lens out of a %d-pixel "
                         "window; at most %g", c.max_offset, f->stamp, half);
  if (!(c.clear >= c.max_offset && c.clear <= 2.0 * LENSSIM_MAX_PIXELS))
    return lenssim__fail(err, LENSSIM_ERR_RANGE, "field windows: clear = %g pixels must be from max_offset = %g (a negative "
                         "must not hold a lens as near as a positive's) to %d", c.clear, c.max_offset, 2 * LENSSIM_MAX_PIXELS);
  if (c.lens_fraction > 0 && f->config.lenses == 0)
    return lenssim__fail(err, LENSSIM_ERR_RANGE, "field windows: positives (lens_fraction = %g) need lenses in the field", c.lens_fraction);
  if (c.lens_fraction < 1 && c.centred_fraction > 0 && f->config.others == 0)
    return lenssim__fail(err, LENSSIM_ERR_RANGE, "field windows: centred negatives (centred_fraction = %g) need non-lenses in "
                         "the field", c.centred_fraction);
  *resolved = c;
  return LENSSIM_OK;
}

/* Step i of a share f taken (floor(i f + u0) steps up between i and i + 1), and how many steps
 * were taken before it. */
static int lenssim__share_step(uint64_t i, double f, double u0, uint64_t *before) {
  double a = floor((double)i * f + u0), b = floor((double)(i + 1) * f + u0);
  *before = (uint64_t)a;
  return b > a;
}

/* The first pixels, along one axis, of the windows whose centre lies within r of position p and
 * that fit in [0, room]: [*lo, *hi], or the nearest window when r is under half a pixel. 0 if none. */
static int lenssim__window_span(double p, double half, double r, int room, int *lo, int *hi) {
  double a = ceil(p - half - r), b = floor(p - half + r);
  if (a > b) a = b = floor(p - half + 0.5);
  if (a < 0) a = 0;
  if (b > room) b = room;
  if (!(a <= b)) return 0;
  *lo = (int)a;
  *hi = (int)b;
  return 1;
}

/* A window about objects[k], within r of it in x and y, inside the field; 0 if none fits. */
static int lenssim__window_about(const lenssim_field *f, const lenssim_field_object *o, double r, lenssim_rng *rng,
                                 int *x, int *y) {
  double half = 0.5 * (f->stamp - 1);
  int room = f->size - f->stamp, x0, x1, y0, y1;
  if (!lenssim__window_span(o->x, half, r, room, &x0, &x1) || !lenssim__window_span(o->y, half, r, room, &y0, &y1)) return 0;
  *x = x0 + (int)(lenssim_rng_uniform(rng) * (x1 - x0 + 1));
  *y = y0 + (int)(lenssim_rng_uniform(rng) * (y1 - y0 + 1));
  return 1;
}

/* Whether no lens lies within d (Chebyshev) of the centre of the window at (x, y). */
static int lenssim__window_clear(const lenssim_field *f, const lenssim_field_object *objects, int x, int y, double d) {
  double half = 0.5 * (f->stamp - 1);
  size_t k;
  for (k = 0; k < f->object_count; k++)
    if (objects[k].label == 1 && fabs(objects[k].x - (x + half)) <= d && fabs(objects[k].y - (y + half)) <= d) return 0;
  return 1;
}

/* The n-th object of class `label` among objects, or -1. */
static long lenssim__field_nth(const lenssim_field *f, const lenssim_field_object *objects, int label, size_t n) {
  size_t k;
  for (k = 0; k < f->object_count; k++)
    if ((objects[k].label == 1) == (label == 1) && n-- == 0) return (long)k;
  return -1;
}

/* The non-lens nearest the centre of the window at (x, y) among those whose position lies in it, or -1. */
static long lenssim__window_nearest(const lenssim_field *f, const lenssim_field_object *objects, int x, int y) {
  double half = 0.5 * (f->stamp - 1), best = 0;
  long found = -1;
  size_t k;
  for (k = 0; k < f->object_count; k++) {
    double dx = objects[k].x - (x + half), dy = objects[k].y - (y + half);
    if (objects[k].label == 1 || fabs(dx) > half + 0.5 || fabs(dy) > half + 0.5) continue;
    if (found < 0 || dx * dx + dy * dy < best) { found = (long)k; best = dx * dx + dy * dy; }
  }
  return found;
}

LENSSIM_API lenssim_result lenssim_field_windows(const lenssim_field *f, const float *image,
                                                 const lenssim_field_object *objects, const lenssim_label *labels,
                                                 const lenssim_window_config *config, uint64_t seed, uint64_t first,
                                                 size_t count, float *windows, lenssim_label *window_labels,
                                                 lenssim_field_window *placed, lenssim_error *err) {
  lenssim_window_config c;
  lenssim_result r;
  size_t lenses = 0, others = 0, usable = 0, k, i;
  double half, u_lens, u_centred;
  if (!f || !config || !objects || (windows && !image) || (window_labels && !labels))
    return lenssim__fail(err, LENSSIM_ERR_ARG, "field windows: NULL argument");
  if ((r = lenssim_field_windows_resolve(f, config, &c, err)) != LENSSIM_OK) return r;
  half = 0.5 * (f->stamp - 1);
  /* lenses that have a window within R inside the field: the positives take them in turn */
  for (k = 0; k < f->object_count; k++) {
    int x0, x1, y0, y1;
    if (objects[k].label != 1) { others++; continue; }
    lenses++;
    usable += lenssim__window_span(objects[k].x, half, c.max_offset, f->size - f->stamp, &x0, &x1) &&
              lenssim__window_span(objects[k].y, half, c.max_offset, f->size - f->stamp, &y0, &y1);
  }
  u_lens = lenssim__hash_uniform(seed, LENSSIM__FIELD_WINDOW_SHARES, 0);
  u_centred = lenssim__hash_uniform(seed, LENSSIM__FIELD_WINDOW_SHARES, 1);
  for (i = 0; i < count; i++) {
    lenssim_field_window w;
    lenssim_rng rng;
    uint64_t n = first + i, positives_before, centred_before;
    int positive = lenssim__share_step(n, c.lens_fraction, u_lens, &positives_before), tries;
    lenssim_rng_seed(&rng, lenssim__hash3(seed, LENSSIM__FIELD_WINDOWS, n));
    w.label = positive;
    if (positive) {
      /* the lens in turn among those that fit, within R of the centre */
      size_t nth = (size_t)(positives_before % (usable ? usable : 1)), seen = 0;
      w.object = -1;
      for (k = 0; usable && k < f->object_count && w.object < 0; k++) {
        int x0, x1, y0, y1;
        if (objects[k].label != 1 || !lenssim__window_span(objects[k].x, half, c.max_offset, f->size - f->stamp, &x0, &x1) ||
            !lenssim__window_span(objects[k].y, half, c.max_offset, f->size - f->stamp, &y0, &y1))
          continue;
        if (seen++ == nth) w.object = (int)k;
      }
      if (w.object < 0)
        return lenssim__fail(err, LENSSIM_ERR_RANGE, "field windows: window %lu: none of the field's %lu lenses has a window "
                             "within %g pixels of it inside the %dx%d field", (unsigned long)n, (unsigned long)lenses,
                             c.max_offset, f->size, f->size);
      lenssim__window_about(f, &objects[w.object], c.max_offset, &rng, &w.x, &w.y);
    } else {
      int centred = lenssim__share_step(n - positives_before, c.centred_fraction, u_centred, &centred_before);
      for (tries = 0; tries < LENSSIM__FIELD_TRIES; tries++) {
        if (centred) {
          long o = lenssim__field_nth(f, objects, 0, (size_t)(lenssim_rng_uniform(&rng) * (double)others));
          if (o < 0 || !lenssim__window_about(f, &objects[o], c.max_offset, &rng, &w.x, &w.y)) continue;
          w.object = (int)o;
        } else {
          w.x = (int)(lenssim_rng_uniform(&rng) * (double)(f->size - f->stamp + 1));
          w.y = (int)(lenssim_rng_uniform(&rng) * (double)(f->size - f->stamp + 1));
        }
        if (lenssim__window_clear(f, objects, w.x, w.y, c.clear)) break;
      }
      if (tries == LENSSIM__FIELD_TRIES)
        return lenssim__fail(err, LENSSIM_ERR_RANGE, "field windows: window %lu: no %s negative keeps the field's %lu lenses "
                             "farther than clear = %g pixels from its centre after %d draws; a smaller clear distance, fewer "
                             "lenses or a larger field", (unsigned long)n, centred ? "centred" : "uniform",
                             (unsigned long)lenses, c.clear, LENSSIM__FIELD_TRIES);
      if (!centred) w.object = (int)lenssim__window_nearest(f, objects, w.x, w.y);
    }
    if (windows) {
      size_t s = (size_t)f->stamp, side = (size_t)f->size, ch, row;
      for (ch = 0; ch < (size_t)f->channels; ch++)
        for (row = 0; row < s; row++)
          memcpy(windows + ((i * (size_t)f->channels + ch) * s + row) * s, image + (ch * side + (size_t)w.y + row) * side + (size_t)w.x,
                 s * sizeof(float));
    }
    if (window_labels) {
      lenssim_label *l = &window_labels[i];
      if (w.object >= 0) {
        const lenssim_field_object *o = &objects[w.object];
        double cx = (o->x - (w.x + half)) * f->pixel_scale, cy = (o->y - (w.y + half)) * f->pixel_scale;
        *l = labels[w.object];
        if (l->source_R > 0) {
          l->source_x += cx - l->center_x;
          l->source_y += cy - l->center_y;
        }
        l->center_x = cx;
        l->center_y = cy;
      } else {
        memset(l, 0, sizeof *l);
        l->kind = LENSSIM_KIND_EMPTY;
        l->n_images2 = -1;
      }
      if (!positive) l->label = 0;
    }
    if (placed) placed[i] = w;
  }
  return LENSSIM_OK;
}

/* ---- scenes from JSON ------------------------------------------------------------------------
 * A reader of its own (lenssim.h builds alone) that fills the structs straight from the text, no
 * tree: each object's keys are looked up in the model's rows above. It never recurses deeper than
 * LENSSIM__JSON_MAX_DEPTH and allocates only a PIXEL kernel, so any input is safe to give it. */
#define LENSSIM__JSON_MAX_DEPTH 64
#define LENSSIM__JSON_MAX_KERNEL 1001
#define LENSSIM__JSON_NAME 64

typedef struct {
  const char *text, *p, *end;
  lenssim_error *err;
  lenssim_json_scene *out;
  size_t source_entries, first_of_source[LENSSIM_MAX_PROFILES + 1]; /* source entry i starts at profile first_of_source[i] */
  double z[2][LENSSIM_MAX_PROFILES]; /* multi_plane's lens_redshifts and source_redshifts */
  size_t z_count[2];
  int has_grid;
} lenssim__reader;

static void lenssim__json_ws(lenssim__reader *rd) {
  while (rd->p < rd->end && (*rd->p == ' ' || *rd->p == '\t' || *rd->p == '\n' || *rd->p == '\r')) rd->p++;
}

static lenssim_result lenssim__json_syntax(lenssim__reader *rd, const char *what) {
  const char *q;
  long line = 1, column = 1;
  for (q = rd->text; q < rd->p; q++) {
    if (*q == '\n') { line++; column = 1; }
    else column++;
  }
  return lenssim__fail(rd->err, LENSSIM_ERR_SYNTAX, "line %ld, column %ld: %s", line, column, what);
}

static int lenssim__json_at(const lenssim__reader *rd, char c) { return rd->p < rd->end && *rd->p == c; }

static int lenssim__json_at_number(const lenssim__reader *rd) {
  return rd->p < rd->end && (*rd->p == '-' || (*rd->p >= '0' && *rd->p <= '9'));
}

/* What the value at rd->p is, for messages; NULL if no value starts there. */
static const char *lenssim__json_kind(const lenssim__reader *rd) {
  char c = rd->p < rd->end ? *rd->p : 0;
  if (c == '"') return "a string";
  if (c == '{') return "an object";
  if (c == '[') return "an array";
  if (lenssim__json_at_number(rd)) return "a number";
  if (c == 't') return "true";
  if (c == 'f') return "false";
  if (c == 'n') return "null";
  return NULL;
}

/* "WHERE: keyword 'KEY' must be WANTED (got ...)", or a syntax error if no value starts at rd->p. */
static lenssim_result lenssim__json_type_error(lenssim__reader *rd, const char *where, const char *key, const char *wanted) {
  const char *got = lenssim__json_kind(rd);
  if (!got) return lenssim__json_syntax(rd, "expected a value");
  if (!key) return lenssim__fail(rd->err, LENSSIM_ERR_SCENE, "%s must be %s (got %s)", where, wanted, got);
  return lenssim__fail(rd->err, LENSSIM_ERR_SCENE, "%s: keyword '%s' must be %s (got %s)", where, key, wanted, got);
}

static int lenssim__hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* A string literal at rd->p into buf (cut to cap - 1 bytes: no name we know is longer; characters
 * beyond ASCII become '?'). buf may be NULL to skip it. */
static lenssim_result lenssim__json_string(lenssim__reader *rd, char *buf, size_t cap) {
  size_t n = 0;
  rd->p++;
  for (;;) {
    unsigned char c;
    if (rd->p >= rd->end) return lenssim__json_syntax(rd, "unterminated string");
    c = (unsigned char)*rd->p;
    if (c == '"') break;
    if (c < 0x20) return lenssim__json_syntax(rd, "control character in a string");
    if (c == '\\') {
      const char *esc = "\"\"\\\\//b\bf\fn\nr\rt\t";
      rd->p++;
      if (rd->p >= rd->end) return lenssim__json_syntax(rd, "unterminated string");
      while (*esc && *esc != *rd->p) esc += 2;
      if (*esc) c = (unsigned char)esc[1];
      else if (*rd->p == 'u') {
        int i, cp = 0;
        for (i = 1; i <= 4; i++) {
          int h = rd->end - rd->p > i ? lenssim__hex_digit(rd->p[i]) : -1;
          if (h < 0) return lenssim__json_syntax(rd, "bad \\u escape in a string");
          cp = cp * 16 + h;
        }
        rd->p += 4;
        c = (unsigned char)(cp > 0 && cp < 0x80 ? cp : '?');
      } else {
        return lenssim__json_syntax(rd, "bad escape in a string");
      }
    }
    if (buf && n + 1 < cap) buf[n++] = (char)c;
    rd->p++;
  }
  rd->p++;
  if (buf) buf[n] = 0;
  return LENSSIM_OK;
}

/* A number at rd->p (JSON's grammar), converted as strtod does, independent of the locale. */
static lenssim_result lenssim__json_number(lenssim__reader *rd, double *out) {
  const char *q = rd->p, *dot;
  char buf[128];
  size_t n;
  if (q < rd->end && *q == '-') q++;
  if (q >= rd->end || *q < '0' || *q > '9') return lenssim__json_syntax(rd, "malformed number");
  if (*q == '0') q++;
  else while (q < rd->end && *q >= '0' && *q <= '9') q++;
  if (q < rd->end && *q == '.') {
    q++;
    if (q >= rd->end || *q < '0' || *q > '9') return lenssim__json_syntax(rd, "malformed number");
    while (q < rd->end && *q >= '0' && *q <= '9') q++;
  }
  if (q < rd->end && (*q == 'e' || *q == 'E')) {
    q++;
    if (q < rd->end && (*q == '+' || *q == '-')) q++;
    if (q >= rd->end || *q < '0' || *q > '9') return lenssim__json_syntax(rd, "malformed number");
    while (q < rd->end && *q >= '0' && *q <= '9') q++;
  }
  n = (size_t)(q - rd->p);
  if (n >= sizeof buf) return lenssim__json_syntax(rd, "number longer than 127 characters");
  memcpy(buf, rd->p, n);
  buf[n] = 0;
  dot = localeconv()->decimal_point;
  if (dot && dot[0] && dot[0] != '.' && !dot[1]) {
    char *d = strchr(buf, '.');
    if (d) *d = dot[0];
  }
  *out = strtod(buf, NULL);
  rd->p = q;
  return LENSSIM_OK;
}

/* Steps through the array or object at rd->p: call with *count = 0 at its opening bracket; each
 * call leaves rd->p at the next value (an object's key read into key, which is NULL for arrays)
 * and sets *more, or passes the closing bracket and clears *more. */
static lenssim_result lenssim__json_next(lenssim__reader *rd, size_t *count, char *key, int *more) {
  char close = key ? '}' : ']';
  lenssim_result r;
  *more = 0;
  if (*count == 0) rd->p++;
  lenssim__json_ws(rd);
  if (lenssim__json_at(rd, close) && *count == 0) { rd->p++; return LENSSIM_OK; }
  if (*count > 0) {
    if (lenssim__json_at(rd, close)) { rd->p++; return LENSSIM_OK; }
    if (!lenssim__json_at(rd, ',')) return lenssim__json_syntax(rd, key ? "expected ',' or '}'" : "expected ',' or ']'");
    rd->p++;
    lenssim__json_ws(rd);
  }
  if (key) {
    if (!lenssim__json_at(rd, '"')) return lenssim__json_syntax(rd, "expected a key in double quotes");
    if ((r = lenssim__json_string(rd, key, LENSSIM__JSON_NAME)) != LENSSIM_OK) return r;
    lenssim__json_ws(rd);
    if (!lenssim__json_at(rd, ':')) return lenssim__json_syntax(rd, "expected ':'");
    rd->p++;
    lenssim__json_ws(rd);
  }
  (*count)++;
  *more = 1;
  return LENSSIM_OK;
}

/* Passes over any value, checking its syntax. */
static lenssim_result lenssim__json_skip(lenssim__reader *rd, int depth) {
  lenssim_result r;
  double v;
  lenssim__json_ws(rd);
  if (lenssim__json_at(rd, '"')) return lenssim__json_string(rd, NULL, 0);
  if (lenssim__json_at(rd, '[') || lenssim__json_at(rd, '{')) {
    char key[LENSSIM__JSON_NAME];
    size_t count = 0;
    int more;
    int object = *rd->p == '{';
    if (depth >= LENSSIM__JSON_MAX_DEPTH) return lenssim__json_syntax(rd, "nested deeper than 64 levels");
    for (;;) {
      if ((r = lenssim__json_next(rd, &count, object ? key : NULL, &more)) != LENSSIM_OK) return r;
      if (!more) return LENSSIM_OK;
      if ((r = lenssim__json_skip(rd, depth + 1)) != LENSSIM_OK) return r;
    }
  }
  if (lenssim__json_at_number(rd)) return lenssim__json_number(rd, &v);
  {
    static const char *const words[] = {"true", "false", "null"};
    size_t i, n;
    for (i = 0; i < 3; i++) {
      n = strlen(words[i]);
      if ((size_t)(rd->end - rd->p) >= n && !memcmp(rd->p, words[i], n)) { rd->p += n; return LENSSIM_OK; }
    }
  }
  return lenssim__json_syntax(rd, "expected a value");
}

/* The "type" of the object at rd->p, found before its other keys are read (an object's keys come
 * in any order, and the type decides what they may be). Leaves rd->p where it was. */
static lenssim_result lenssim__json_type(lenssim__reader *rd, const char *what, char *type) {
  const char *start = rd->p;
  char key[LENSSIM__JSON_NAME];
  size_t count = 0;
  int more, found = 0;
  lenssim_result r;
  if (!lenssim__json_at(rd, '{')) return lenssim__json_type_error(rd, what, NULL, "an object");
  for (;;) {
    if ((r = lenssim__json_next(rd, &count, key, &more)) != LENSSIM_OK) return r;
    if (!more) break;
    if (!strcmp(key, "type")) {
      if (!lenssim__json_at(rd, '"')) return lenssim__json_type_error(rd, what, "type", "a string");
      if ((r = lenssim__json_string(rd, type, LENSSIM__JSON_NAME)) != LENSSIM_OK) return r;
      found = 1;
    } else if ((r = lenssim__json_skip(rd, 1)) != LENSSIM_OK) {
      return r;
    }
  }
  if (!found) return lenssim__fail(rd->err, LENSSIM_ERR_SCENE, "%s: missing keyword 'type'", what);
  rd->p = start;
  return LENSSIM_OK;
}

/* "A, B, C" from count names, each the first member of a struct of size `stride` (a model's name,
 * a row's key). */
static void lenssim__list_names(char *buf, size_t cap, const char *const *names, size_t stride, size_t count) {
  size_t i, used = 0;
  buf[0] = 0;
  for (i = 0; i < count && used < cap; i++) {
    int w = snprintf(buf + used, cap - used, "%s%s", i ? ", " : "", *(const char *const *)((const char *)names + i * stride));
    if (w < 0) break;
    used += (size_t)w;
  }
}

static lenssim_result lenssim__json_kernel(lenssim__reader *rd, const char *where);
static lenssim_result lenssim__json_redshifts(lenssim__reader *rd, const char *key, int list);

/* The keys of the object at rd->p, by the model's rows, into obj. A typed object (an entry of a
 * list, the psf) also holds "type", already read. */
static lenssim_result lenssim__json_keys(lenssim__reader *rd, const lenssim__model *m, void *obj, const char *what,
                                         int typed) {
  char key[LENSSIM__JSON_NAME], buf[96];
  const char *where = lenssim__where(buf, sizeof buf, what, m->name);
  unsigned long given = 0;
  size_t count = 0, i;
  int more;
  lenssim_result r;
  if (!lenssim__json_at(rd, '{')) return lenssim__json_type_error(rd, what, NULL, "an object");
  for (;;) {
    const lenssim__key *k = NULL;
    double v;
    if ((r = lenssim__json_next(rd, &count, key, &more)) != LENSSIM_OK) return r;
    if (!more) break;
    if (typed && !strcmp(key, "type")) {
      if ((given & 1ul << 31) != 0) return lenssim__fail(rd->err, LENSSIM_ERR_SCENE, "%s: 'type' given twice", what);
      given |= 1ul << 31;
      if ((r = lenssim__json_string(rd, NULL, 0)) != LENSSIM_OK) return r;
      continue;
    }
    for (i = 0; i < m->count && !k; i++)
      if (!strcmp(key, m->keys[i].key)) k = &m->keys[i];
    if (!k) {
      char known[160];
      known[0] = 0;
      if (m->count) lenssim__list_names(known, sizeof known, &m->keys[0].key, sizeof m->keys[0], m->count);
      return lenssim__fail(rd->err, LENSSIM_ERR_SCENE, "%s: unknown keyword '%s' (%s%s)", where, key,
                           m->count ? "it takes " : "it takes no keyword besides 'type'", known);
    }
    if (given & 1ul << (k - m->keys)) return lenssim__fail(rd->err, LENSSIM_ERR_SCENE, "%s: '%s' given twice", where, key);
    given |= 1ul << (k - m->keys);
    if (k->flags & LENSSIM__KERNEL) r = lenssim__json_kernel(rd, where);
    else if (k->flags & LENSSIM__LIST) r = lenssim__json_redshifts(rd, key, (int)k->offset);
    else if (!lenssim__json_at_number(rd))
      r = lenssim__json_type_error(rd, where, key, "a number");
    else if ((r = lenssim__json_number(rd, &v)) == LENSSIM_OK &&
             (r = lenssim__key_check(k, key, v, what, m->name, rd->err)) == LENSSIM_OK) {
      char *field = (char *)obj + k->offset;
      if (k->flags & LENSSIM__INT) {
        int iv = (int)v;
        memcpy(field, &iv, sizeof iv);
      } else {
        memcpy(field, &v, sizeof v);
      }
    }
    if (r != LENSSIM_OK) return r;
  }
  for (i = 0; i < m->count; i++)
    if ((m->keys[i].flags & LENSSIM__REQUIRED) && !(given & 1ul << i))
      return lenssim__fail(rd->err, LENSSIM_ERR_SCENE, "%s: missing keyword '%s'", where, m->keys[i].key);
  return lenssim__model_check(m, obj, what, rd->err);
}

/* A PIXEL kernel: an odd number of rows of as many numbers. The side comes from the first row. */
static lenssim_result lenssim__json_kernel(lenssim__reader *rd, const char *where) {
  const char *start = rd->p;
  size_t side = 0, rows = 0, count, cols;
  int more;
  double v;
  lenssim_result r;
  lenssim_json_scene *out = rd->out;
  if (!lenssim__json_at(rd, '[')) return lenssim__json_type_error(rd, where, "kernel", "an array of rows");
  for (;;) { /* the first pass counts the first row and checks the syntax of all */
    if ((r = lenssim__json_next(rd, &rows, NULL, &more)) != LENSSIM_OK) return r;
    if (!more) break;
    if (!lenssim__json_at(rd, '[')) return lenssim__json_type_error(rd, where, "kernel", "an array of rows of numbers");
    for (count = 0;;) {
      if ((r = lenssim__json_next(rd, &count, NULL, &more)) != LENSSIM_OK) return r;
      if (!more) break;
      if (!lenssim__json_at_number(rd)) return lenssim__json_type_error(rd, where, "kernel", "rows of numbers");
      if ((r = lenssim__json_number(rd, &v)) != LENSSIM_OK) return r;
    }
    if (rows == 1) side = count;
    if (rows > LENSSIM__JSON_MAX_KERNEL) break;
  }
  if (side == 0 || side % 2 == 0 || side > LENSSIM__JSON_MAX_KERNEL || rows != side)
    return lenssim__fail(rd->err, LENSSIM_ERR_SCENE, "%s: 'kernel' must be a square array of rows with an odd side "
                         "(at most %d), got %lu rows of %lu", where, LENSSIM__JSON_MAX_KERNEL, (unsigned long)rows,
                         (unsigned long)side);
  out->psf_kernel = (double *)LENSSIM_MALLOC(side * side * sizeof(double));
  if (!out->psf_kernel) return lenssim__fail(rd->err, LENSSIM_ERR_NOMEM, "%s: out of memory for the kernel", where);
  rd->p = start;
  for (rows = 0;;) {
    if ((r = lenssim__json_next(rd, &rows, NULL, &more)) != LENSSIM_OK) return r;
    if (!more) break;
    for (cols = 0;;) {
      if ((r = lenssim__json_next(rd, &cols, NULL, &more)) != LENSSIM_OK) return r;
      if (!more) break;
      if (cols > side) break;
      if ((r = lenssim__json_number(rd, &out->psf_kernel[(rows - 1) * side + cols - 1])) != LENSSIM_OK) return r;
    }
    if (cols != side)
      return lenssim__fail(rd->err, LENSSIM_ERR_SCENE, "%s: kernel row %lu must hold %lu numbers", where,
                           (unsigned long)(rows - 1), (unsigned long)side);
  }
  out->scene.psf.kernel = out->psf_kernel;
  out->scene.psf.kernel_size = (int)side;
  return LENSSIM_OK;
}

/* multi_plane's lens_redshifts (list 0) or source_redshifts (list 1): all are counted, the first
 * LENSSIM_MAX_PROFILES kept (more can never match the entries). */
static lenssim_result lenssim__json_redshifts(lenssim__reader *rd, const char *key, int list) {
  size_t count = 0;
  int more;
  lenssim_result r;
  if (!lenssim__json_at(rd, '[')) return lenssim__json_type_error(rd, "multi_plane", key, "an array of numbers");
  for (;;) {
    char name[LENSSIM__JSON_NAME + 24];
    double z;
    if ((r = lenssim__json_next(rd, &count, NULL, &more)) != LENSSIM_OK) return r;
    if (!more) break;
    snprintf(name, sizeof name, "%s[%lu]", key, (unsigned long)(count - 1));
    if (!lenssim__json_at_number(rd)) return lenssim__json_type_error(rd, "multi_plane", name, "a number");
    if ((r = lenssim__json_number(rd, &z)) != LENSSIM_OK ||
        (r = lenssim__key_check(&lenssim__light_redshift, name, z, "multi_plane", NULL, rd->err)) != LENSSIM_OK)
      return r;
    if (count <= LENSSIM_MAX_PROFILES) rd->z[list][count - 1] = z;
  }
  rd->z_count[list] = count;
  return LENSSIM_OK;
}

/* A light entry "CLUMPY": lenssim_clumpy's keywords plus the seed of its clumps. */
typedef struct {
  lenssim_clumpy clumpy; /* first, so that offsets in lenssim_clumpy are offsets here */
  double seed;
} lenssim__clumpy_entry;
static const lenssim__key lenssim__clumpy_keys[] = {
  LENSSIM__AMP(lenssim_clumpy), LENSSIM__SERSIC(lenssim_clumpy), LENSSIM__ELLIPTICITY(lenssim_clumpy),
  LENSSIM__CENTRE(lenssim_clumpy),
  LENSSIM__ROW(lenssim_clumpy, "num_clumps", num_clumps, LENSSIM__INT, 0.0, LENSSIM_MAX_PROFILES / 2),
  LENSSIM__ROW(lenssim_clumpy, "clump_fraction", clump_fraction, 0, 0.0, 1.0),
  LENSSIM__ROW(lenssim_clumpy, "clump_sigma", clump_sigma, 0, 0.0, 1e3),
  LENSSIM__ROW(lenssim__clumpy_entry, "seed", seed, LENSSIM__WHOLE, 0.0, 9007199254740992.0)};
static const lenssim__model lenssim__clumpy_model = LENSSIM__MODEL("CLUMPY", lenssim__clumpy_keys);

/* "lens": an array of mass entries. */
static lenssim_result lenssim__json_lenses(lenssim__reader *rd) {
  size_t count = 0;
  int more;
  lenssim_result r;
  lenssim_json_scene *out = rd->out;
  if (!lenssim__json_at(rd, '[')) return lenssim__json_type_error(rd, "scene", "lens", "an array of lens model entries");
  for (;;) {
    char what[32], type[LENSSIM__JSON_NAME], known[160];
    int kind;
    if ((r = lenssim__json_next(rd, &count, NULL, &more)) != LENSSIM_OK) return r;
    if (!more) break;
    snprintf(what, sizeof what, "lens[%lu]", (unsigned long)(count - 1));
    if (count > LENSSIM_MAX_PROFILES)
      return lenssim__fail(rd->err, LENSSIM_ERR_TOO_LARGE, "%s: at most %d lens entries are supported", what, LENSSIM_MAX_PROFILES);
    if ((r = lenssim__json_type(rd, what, type)) != LENSSIM_OK) return r;
    if ((kind = lenssim_mass_kind_from_name(type)) < 0) {
      lenssim__list_names(known, sizeof known, &lenssim__mass_models[0].name, sizeof lenssim__mass_models[0],
                          LENSSIM_MASS_KIND_COUNT);
      return lenssim__fail(rd->err, LENSSIM_ERR_UNKNOWN, "%s: unknown lens model '%s' (known: %s)", what, type, known);
    }
    out->lenses[count - 1].kind = (lenssim_mass_kind)kind;
    if ((r = lenssim__json_keys(rd, &lenssim__mass_models[kind], &out->lenses[count - 1], what, 1)) != LENSSIM_OK) return r;
    out->scene.lens.num_lenses = count;
  }
  return LENSSIM_OK;
}

/* "lens_light" or "source_light": an array of light entries; CLUMPY entries expand into a disc and
 * its clumps. */
static lenssim_result lenssim__json_lights(lenssim__reader *rd, const char *section, lenssim_light *lights, size_t *used,
                                           size_t *first_of) {
  size_t count = 0;
  int more;
  lenssim_result r;
  if (!lenssim__json_at(rd, '[')) return lenssim__json_type_error(rd, "scene", section, "an array of light model entries");
  for (;;) {
    char what[32], type[LENSSIM__JSON_NAME], known[160];
    int kind;
    if ((r = lenssim__json_next(rd, &count, NULL, &more)) != LENSSIM_OK) return r;
    if (!more) break;
    snprintf(what, sizeof what, "%s[%lu]", section, (unsigned long)(count - 1));
    if (count > LENSSIM_MAX_PROFILES)
      return lenssim__fail(rd->err, LENSSIM_ERR_TOO_LARGE, "%s: at most %d entries are supported", what, LENSSIM_MAX_PROFILES);
    if ((r = lenssim__json_type(rd, what, type)) != LENSSIM_OK) return r;
    if (first_of) first_of[count - 1] = *used;
    kind = lenssim_light_kind_from_name(type);
    if (kind < 0 && !strcmp(type, lenssim__clumpy_model.name)) {
      lenssim__clumpy_entry c;
      lenssim_rng rng;
      size_t made;
      memset(&c, 0, sizeof c);
      if ((r = lenssim__json_keys(rd, &lenssim__clumpy_model, &c, what, 1)) != LENSSIM_OK) return r;
      lenssim_rng_seed(&rng, (uint64_t)c.seed);
      if (!(made = lenssim_clumpy_source(&c.clumpy, &rng, lights + *used, (size_t)LENSSIM_MAX_PROFILES - *used)))
        return lenssim__fail(rd->err, LENSSIM_ERR_TOO_LARGE, "%s 'CLUMPY': too many profiles in '%s' (at most %d)", what,
                             section, LENSSIM_MAX_PROFILES);
      *used += made;
      continue;
    }
    if (kind < 0) {
      lenssim__list_names(known, sizeof known, &lenssim__light_models[0].name, sizeof lenssim__light_models[0],
                          LENSSIM_LIGHT_KIND_COUNT);
      return lenssim__fail(rd->err, LENSSIM_ERR_UNKNOWN, "%s: unknown light model '%s' (known: %s, %s)", what, type, known,
                           lenssim__clumpy_model.name);
    }
    if (*used >= LENSSIM_MAX_PROFILES)
      return lenssim__fail(rd->err, LENSSIM_ERR_TOO_LARGE, "%s: too many profiles in '%s' (at most %d)", what, section,
                           LENSSIM_MAX_PROFILES);
    lights[*used].kind = (lenssim_light_kind)kind;
    if ((r = lenssim__json_keys(rd, &lenssim__light_models[kind], &lights[*used], what, 1)) != LENSSIM_OK) return r;
    (*used)++;
  }
  if (first_of) {
    first_of[count] = *used;
    rd->source_entries = count;
  }
  return LENSSIM_OK;
}

static lenssim_result lenssim__json_psf(lenssim__reader *rd) {
  char type[LENSSIM__JSON_NAME], known[64];
  int kind;
  lenssim_result r;
  if ((r = lenssim__json_type(rd, "psf", type)) != LENSSIM_OK) return r;
  kind = lenssim__model_index(lenssim__psf_models, (int)(sizeof lenssim__psf_models / sizeof lenssim__psf_models[0]), type);
  if (kind < 0) {
    lenssim__list_names(known, sizeof known, &lenssim__psf_models[0].name, sizeof lenssim__psf_models[0],
                        sizeof lenssim__psf_models / sizeof lenssim__psf_models[0]);
    return lenssim__fail(rd->err, LENSSIM_ERR_UNKNOWN, "psf: unknown type '%s' (known: %s)", type, known);
  }
  rd->out->has_psf = 1;
  rd->out->scene.psf.kind = (lenssim_psf_kind)kind;
  return lenssim__json_keys(rd, &lenssim__psf_models[kind], &rd->out->scene.psf, "psf", 1);
}

static lenssim_result lenssim__json_section(lenssim__reader *rd, const char *key) {
  lenssim_json_scene *out = rd->out;
  if (!strcmp(key, "grid")) {
    rd->has_grid = 1;
    return lenssim__json_keys(rd, &lenssim__grid_model, &out->scene.grid, "grid", 0);
  }
  if (!strcmp(key, "lens")) return lenssim__json_lenses(rd);
  if (!strcmp(key, "lens_light")) return lenssim__json_lights(rd, key, out->lens_light, &out->scene.num_lens_light, NULL);
  if (!strcmp(key, "source_light"))
    return lenssim__json_lights(rd, key, out->source_light, &out->scene.num_source_light, rd->first_of_source);
  if (!strcmp(key, "psf")) return lenssim__json_psf(rd);
  if (!strcmp(key, "cosmology")) return lenssim__json_keys(rd, &lenssim__cosmology_model, &out->scene.lens.cosmology, key, 0);
  if (!strcmp(key, "multi_plane")) {
    out->scene.lens.multi_plane = 1;
    return lenssim__json_keys(rd, &lenssim__multi_plane_model, &out->scene.lens, key, 0);
  }
  /* "kind": an informative string */
  if (!lenssim__json_at(rd, '"')) return lenssim__json_type_error(rd, "scene", key, "a string");
  return lenssim__json_string(rd, out->kind, sizeof out->kind);
}

/* multi_plane's redshift lists onto the entries they describe. */
static lenssim_result lenssim__json_redshifts_apply(lenssim__reader *rd) {
  lenssim_json_scene *out = rd->out;
  size_t i, k, lenses = out->scene.lens.num_lenses;
  if (rd->z_count[0] != lenses)
    return lenssim__fail(rd->err, LENSSIM_ERR_SCENE, "multi_plane: 'lens_redshifts' has %lu redshifts but there are %lu lens entries",
                         (unsigned long)rd->z_count[0], (unsigned long)lenses);
  for (i = 0; i < lenses; i++) out->lenses[i].redshift = rd->z[0][i];
  if (!rd->z_count[1]) return LENSSIM_OK;
  if (rd->z_count[1] != rd->source_entries)
    return lenssim__fail(rd->err, LENSSIM_ERR_SCENE,
                         "multi_plane: 'source_redshifts' has %lu redshifts but there are %lu source_light entries",
                         (unsigned long)rd->z_count[1], (unsigned long)rd->source_entries);
  for (i = 0; i < rd->source_entries; i++)
    for (k = rd->first_of_source[i]; k < rd->first_of_source[i + 1]; k++) out->source_light[k].redshift = rd->z[1][i];
  return LENSSIM_OK;
}

static lenssim_result lenssim__json_scene(lenssim__reader *rd) {
  static const char *const sections[] = {"grid", "lens", "lens_light", "source_light", "psf", "cosmology", "multi_plane", "kind"};
  const size_t nsections = sizeof sections / sizeof sections[0];
  char key[LENSSIM__JSON_NAME], known[128];
  unsigned given = 0;
  size_t count = 0, i;
  int more;
  lenssim_result r;
  /* the syntax first, so that no other error hides a syntax error further on */
  if ((r = lenssim__json_skip(rd, 0)) != LENSSIM_OK) return r;
  lenssim__json_ws(rd);
  if (rd->p != rd->end) return lenssim__json_syntax(rd, "text after the JSON value");
  rd->p = rd->text;
  lenssim__json_ws(rd);
  if (!lenssim__json_at(rd, '{'))
    return lenssim__fail(rd->err, LENSSIM_ERR_SCENE, "a scene must be a JSON object (got %s)", lenssim__json_kind(rd));
  for (;;) {
    if ((r = lenssim__json_next(rd, &count, key, &more)) != LENSSIM_OK) return r;
    if (!more) break;
    for (i = 0; i < nsections && strcmp(key, sections[i]); i++) {}
    if (i == nsections) {
      lenssim__list_names(known, sizeof known, sections, sizeof sections[0], nsections);
      return lenssim__fail(rd->err, LENSSIM_ERR_SCENE, "scene: unknown keyword '%s' (known: %s)", key, known);
    }
    if (given & 1u << i) return lenssim__fail(rd->err, LENSSIM_ERR_SCENE, "scene: '%s' given twice", key);
    given |= 1u << i;
    if ((r = lenssim__json_section(rd, key)) != LENSSIM_OK) return r;
  }
  if (!rd->has_grid) return lenssim__fail(rd->err, LENSSIM_ERR_SCENE, "scene: missing 'grid' (num_pix, pixel_scale, supersampling)");
  if (rd->out->scene.lens.multi_plane && (r = lenssim__json_redshifts_apply(rd)) != LENSSIM_OK) return r;
  return lenssim_scene_check(&rd->out->scene, rd->err);
}

LENSSIM_API lenssim_result lenssim_scene_from_json(const char *text, size_t len, lenssim_json_scene *out,
                                                   lenssim_error *err) {
  lenssim__reader rd;
  lenssim_result r;
  if (!out) return lenssim__fail(err, LENSSIM_ERR_ARG, "no scene to fill");
  memset(out, 0, sizeof *out);
  out->scene.lens.lenses = out->lenses;
  out->scene.lens_light = out->lens_light;
  out->scene.source_light = out->source_light;
  if (!text && len) return lenssim__fail(err, LENSSIM_ERR_ARG, "text is NULL");
  memset(&rd, 0, sizeof rd);
  rd.text = rd.p = text ? text : "";
  rd.end = rd.text + len;
  rd.err = err;
  rd.out = out;
  r = lenssim__json_scene(&rd);
  if (r != LENSSIM_OK) lenssim_json_scene_free(out);
  return r;
}

LENSSIM_API void lenssim_json_scene_free(lenssim_json_scene *s) {
  if (!s) return;
  if (s->psf_kernel) LENSSIM_FREE(s->psf_kernel);
  s->psf_kernel = NULL;
  s->scene.psf.kernel = NULL;
  s->scene.psf.kernel_size = 0;
}

#ifdef LENSSIM__PUSHED_OPTIONS
#pragma GCC pop_options
#undef LENSSIM__PUSHED_OPTIONS
#endif
#endif /* LENSSIM_IMPLEMENTATION */

/*
----------------------------------------------------------------------------------------------
LICENCE (lensnet.h, lenssim.h and lensviz.h share it; it is the repository's LICENSE file)

MIT License

Copyright (c) 2026 The lens toolkit authors

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.
----------------------------------------------------------------------------------------------
*/
