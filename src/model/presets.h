// Named model sizes. `tiny` is the CPU default: small enough to train on 2 cores in minutes.
// The GPT-2 sizes match ../shared/peers/torch_gpt.py (vocab 50304, T 1024).
#pragma once

#include <string>
#include <vector>

#include "model/config.h"

namespace octet {

ModelConfig model_preset(const std::string& name); // throws Error listing the known names
const std::vector<std::string>& model_preset_names();

} // namespace octet
