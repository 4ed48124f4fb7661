/* The one translation unit of the tool that holds the headers' implementations (and
 * stb_image_write's, which lensviz.h uses for PNG). */
#define LENSNET_IMPLEMENTATION
#include "lensnet.h"
#define LENSSIM_IMPLEMENTATION
#include "lenssim.h"
#define STB_IMAGE_WRITE_IMPLEMENTATION
#define LENSVIZ_IMPLEMENTATION
#include "lensviz.h"
