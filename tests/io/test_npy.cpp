// .npy/.npz reading and writing (io/npy.h): files as NumPy writes them, round trips, and every
// malformed input refused with a message naming the problem.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <unistd.h>

#include "common/error.h"
#include "io/atomic_file.h"
#include "io/npy.h"
#include "tests/harness/temp_dir.h"

namespace octet {
namespace {

namespace fs = std::filesystem;

class NpyTest : public testing::TempDirTest {
  protected:
    void write_raw(const std::string& name, const std::string& bytes) const {
        std::ofstream(path(name), std::ios::binary) << bytes;
    }
};

// The bytes np.save writes for np.array([[1, 2, 3], [4, 5, 6]], dtype='<f4') (format 1.0).
std::string numpy_f4_2x3() {
    std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
    header.append((64 - (10 + header.size() + 1) % 64) % 64, ' '); // data on a 64-byte boundary
    header += '\n';
    std::string out = std::string("\x93NUMPY\x01\x00", 8);
    out += char(header.size() & 0xFF);
    out += char(header.size() >> 8);
    out += header;
    for (float v : {1.f, 2.f, 3.f, 4.f, 5.f, 6.f}) out.append(reinterpret_cast<const char*>(&v), 4);
    return out;
}

TEST_F(NpyTest, ReadsWhatNumpyWrites) {
    write_raw("a.npy", numpy_f4_2x3());
    const NpyArray a = read_npy(path("a.npy"));
    EXPECT_EQ(a.dtype, "<f4");
    EXPECT_EQ(a.shape, (std::vector<int64_t>{2, 3}));
    EXPECT_EQ(npy_to_float(a, "a"), (std::vector<float>{1, 2, 3, 4, 5, 6}));
    // And we write the same bytes NumPy does.
    const std::string numpy_bytes = numpy_f4_2x3();
    EXPECT_EQ(serialize_npy(a), std::vector<uint8_t>(numpy_bytes.begin(), numpy_bytes.end()));
}

TEST_F(NpyTest, ConvertsOtherDtypes) {
    const NpyArray f8{"<f8", {2}, std::vector<uint8_t>(16)};
    NpyArray d = f8;
    const double vals[2] = {0.5, -3.25};
    std::memcpy(d.bytes.data(), vals, 16);
    EXPECT_EQ(npy_to_float(d, "d"), (std::vector<float>{0.5f, -3.25f}));
    NpyArray h{"<f2", {1}, {0x00, 0x3C}}; // 1.0 in fp16
    EXPECT_EQ(npy_to_float(h, "h"), (std::vector<float>{1.0f}));
    NpyArray i{"<i2", {1}, {0xFE, 0xFF}}; // -2
    EXPECT_EQ(npy_to_float(i, "i"), (std::vector<float>{-2.0f}));
    EXPECT_NE(
        testing::error_message([&] { npy_to_float(npy_from_string("x"), "s"); }).find("numeric"),
        std::string::npos);
}

TEST_F(NpyTest, NpzRoundTripsEveryEntry) {
    const std::vector<std::pair<std::string, NpyArray>> entries = {
        {"codes", npy_from_u8({2, 2}, {1, 2, 3, 4})},
        {"scale_inv_0", npy_from_float({1, 2}, {0.5f, 0.25f})},
        {"scale_block_0", npy_from_i64({2}, {1, 128})},
        {"format", npy_from_string("e4m3")},
        {"empty", npy_from_float({0, 3}, {})},
    };
    write_npz(path("q.npz"), entries);
    const auto back = read_npz(path("q.npz"));
    ASSERT_EQ(back.size(), entries.size());
    for (const auto& [name, a] : entries) {
        ASSERT_TRUE(back.count(name)) << name;
        EXPECT_EQ(back.at(name).dtype, a.dtype);
        EXPECT_EQ(back.at(name).shape, a.shape);
        EXPECT_EQ(back.at(name).bytes, a.bytes);
    }
    EXPECT_EQ(npy_to_string(back.at("format"), "format"), "e4m3");
    EXPECT_FALSE(fs::exists(path("q.npz.tmp." + std::to_string(::getpid()))));
}

TEST_F(NpyTest, MalformedFilesAreRefusedWithClearMessages) {
    EXPECT_NE(testing::error_message([&] { read_npy(path("missing.npy")); }).find("cannot open"),
              std::string::npos);
    write_raw("bad.npy", "hello world, not numpy");
    EXPECT_NE(testing::error_message([&] { read_npy(path("bad.npy")); }).find("bad magic"),
              std::string::npos);
    std::string f = numpy_f4_2x3();
    write_raw("truncated.npy", f.substr(0, f.size() - 5));
    EXPECT_NE(testing::error_message([&] { read_npy(path("truncated.npy")); }).find("truncated"),
              std::string::npos);
    std::string fortran = f;
    fortran.replace(fortran.find("False"), 5, "True ");
    write_raw("fortran.npy", fortran);
    EXPECT_NE(testing::error_message([&] { read_npy(path("fortran.npy")); }).find("Fortran"),
              std::string::npos);
    std::string big = f;
    big.replace(big.find("<f4"), 3, ">f4");
    write_raw("big.npy", big);
    EXPECT_NE(testing::error_message([&] { read_npy(path("big.npy")); }).find("big-endian"),
              std::string::npos);
    std::string obj = f;
    obj.replace(obj.find("<f4"), 3, "|O8");
    write_raw("obj.npy", obj);
    EXPECT_NE(testing::error_message([&] { read_npy(path("obj.npy")); }).find("unsupported dtype"),
              std::string::npos);

    write_npz(path("ok.npz"), {{"a", npy_from_float({3}, {1, 2, 3})}});
    std::vector<uint8_t> zip = read_file(path("ok.npz"));
    zip[zip.size() / 2] ^= 0xFF; // corrupt one byte of the data
    write_file_atomic(path("corrupt.npz"), zip);
    EXPECT_NE(testing::error_message([&] { read_npz(path("corrupt.npz")); }).find("npz"),
              std::string::npos);
    write_raw("empty.npz", "");
    EXPECT_NE(testing::error_message([&] { read_npz(path("empty.npz")); }).find("not a .npz"),
              std::string::npos);
}

TEST_F(NpyTest, AtomicWriteReplacesAndNeverLeavesHalfAFile) {
    write_file_atomic(path("f"), {1, 2, 3});
    write_file_atomic(path("f"), {4, 5});
    EXPECT_EQ(read_file(path("f")), (std::vector<uint8_t>{4, 5}));
    EXPECT_THROW(write_file_atomic(path("no/such/dir/f"), {1}), Error);
    size_t files = 0;
    for (const auto& e : fs::directory_iterator(dir_)) files += e.is_regular_file();
    EXPECT_EQ(files, 1u); // no temporary left behind
}

} // namespace
} // namespace octet
