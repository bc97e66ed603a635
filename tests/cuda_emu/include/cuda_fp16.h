// The CUDA emulator's stand-in for the toolkit header (see msemu.h).
#pragma once
#include "msemu.h"
