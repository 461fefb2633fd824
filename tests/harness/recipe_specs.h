// Recipe specs the recipe tests run through: every recipe, with the options that change its
// layout or its scales.
#pragma once

namespace octet::testing {

inline const char* const all_recipe_specs[] = {
    "te-current",     "te-current:pow2=true,margin=1",
    "te-delayed",     "te-delayed:format=e4m3,algo=most_recent",
    "rowwise",        "rowwise:pow2=false",
    "blockwise",      "blockwise:pow2=true",
    "mxfp8",          "moss",
    "moss:group=128", "moss:group=128,global_rows=64"};

} // namespace octet::testing
