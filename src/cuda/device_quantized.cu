// Device quantized tensors (see device_quantized.h).
#include "cuda/device_quantized.h"

#include <algorithm>

#include "cuda/launch.cuh"

namespace octet::cuda {

void DeviceScaleGrid::shape(int64_t rows, int64_t cols, int64_t block_rows_, int64_t block_cols_,
                            ScaleEncoding encoding_, bool pow2_) {
    block_rows = block_rows_;
    block_cols = block_cols_;
    grid_rows = rows > 0 && cols > 0 ? (rows + block_rows - 1) / block_rows : 0;
    grid_cols = rows > 0 && cols > 0 ? (cols + block_cols - 1) / block_cols : 0;
    encoding = encoding_;
    pow2 = pow2_;
    scale_inv.resize(grid_rows * grid_cols);
}

DeviceScaleGrid& DeviceQuantized::shape_one_level(Format format_, int64_t rows_, int64_t cols_,
                                                  int64_t block_rows, int64_t block_cols,
                                                  ScaleEncoding encoding, bool pow2) {
    format = format_;
    rows = rows_;
    cols = cols_;
    codes.resize(rows * cols);
    level_count = 1;
    levels[0].shape(rows, cols, block_rows, block_cols, encoding, pow2);
    return levels[0];
}

void DeviceQuantized::shape_two_level(int64_t rows_, int64_t cols_,
                                      const TwoLevelOptions& options) {
    format = options.format;
    rows = rows_;
    cols = cols_;
    codes.resize(rows * cols);
    const int64_t coarse =
        options.global_rows > 0 ? options.global_rows : std::max<int64_t>(rows, 1);
    levels[0].shape(rows, cols, 1, options.group, ScaleEncoding::e8m0, true);
    levels[1].shape(rows, cols, coarse, std::max<int64_t>(cols, 1), ScaleEncoding::fp32, false);
    level_count = 2;
}

LevelViews DeviceQuantized::views(Levels which) const {
    LevelViews v{};
    for (int i = 0; i < level_count; ++i) {
        const DeviceScaleGrid& g = levels[size_t(i)];
        if ((which == Levels::varying && g.whole()) || (which == Levels::whole && !g.whole()))
            continue;
        v.level[v.count++] = {g.scale_inv.data(), g.block_rows, g.block_cols, g.grid_cols};
    }
    return v;
}

QuantizedTensor DeviceQuantized::download() const {
    QuantizedTensor q;
    q.format = format;
    q.rows = rows;
    q.cols = cols;
    q.codes = codes.download();
    for (int i = 0; i < level_count; ++i) {
        const DeviceScaleGrid& d = levels[size_t(i)];
        ScaleGrid g;
        g.block_rows = d.block_rows;
        g.block_cols = d.block_cols;
        g.grid_rows = d.grid_rows;
        g.grid_cols = d.grid_cols;
        g.encoding = d.encoding;
        g.scale_inv = d.scale_inv.download();
        q.scales.push_back(std::move(g));
    }
    return q;
}

void dequantize(const DeviceQuantized& q, float* out, cudaStream_t stream) {
    const uint8_t* codes = q.codes.data();
    const LevelViews levels = q.views();
    const int64_t cols = q.cols;
    const Format format = q.format;
    const auto value = [=] __device__(int64_t r, int64_t c) {
        return decode(codes[r * cols + c], format) * levels.at(r, c);
    };
    for_each(q.numel(), stream, [=] __device__(int64_t i) { out[i] = value(i / cols, i % cols); });
}

} // namespace octet::cuda
