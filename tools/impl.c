/* The one translation unit of the tool that holds the headers' implementations. */
#define LENSNET_IMPLEMENTATION
#include "lensnet.h"
#define LENSSIM_IMPLEMENTATION
#include "lenssim.h"
