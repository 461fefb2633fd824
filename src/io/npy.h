// NumPy .npy and .npz files (format spec: numpy.lib.format, versions 1.0–3.0).
// Read: C-order little-endian arrays of f2/f4/f8, i1–i8, u1–u8, b1, and U (strings); .npz archives
// written by np.savez (stored entries; np.savez_compressed is refused with a clear message).
// Write: .npy v1.0 and stored .npz, atomically.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace octet {

struct NpyArray {
    std::string dtype; // NumPy descr, e.g. "<f4", "|u1", "<U8"
    std::vector<int64_t> shape;
    std::vector<uint8_t> bytes; // C-order data

    int64_t numel() const;
};

// `what` names the source in error messages (a path, or "archive.npz:entry").
NpyArray parse_npy(const std::vector<uint8_t>& file, const std::string& what);
std::vector<uint8_t> serialize_npy(const NpyArray& a);

NpyArray read_npy(const std::string& path);
void write_npy(const std::string& path, const NpyArray& a);

// Entries by name, without the ".npy" suffix.
std::map<std::string, NpyArray> read_npz(const std::string& path);
void write_npz(const std::string& path,
               const std::vector<std::pair<std::string, NpyArray>>& entries);

// Numeric arrays as float (f8 and wide integers are rounded to nearest float).
std::vector<float> npy_to_float(const NpyArray& a, const std::string& what);

NpyArray npy_from_float(const std::vector<int64_t>& shape, const std::vector<float>& values);
NpyArray npy_from_i64(const std::vector<int64_t>& shape, const std::vector<int64_t>& values);
NpyArray npy_from_u8(const std::vector<int64_t>& shape, const std::vector<uint8_t>& values);
NpyArray npy_from_string(const std::string& ascii); // a 0-d "<U" array
std::string npy_to_string(const NpyArray& a, const std::string& what);

} // namespace octet
