// .npy / .npz reading and writing (see npy.h). The .npz container is a ZIP archive; entries are
// written "stored" (no compression) with CRC-32, as np.savez does.
#include "io/npy.h"

#include <array>
#include <cstring>

#include "common/error.h"
#include "io/atomic_file.h"
#include "numerics/formats.h"

namespace octet {

int64_t NpyArray::numel() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
}

namespace {

const char npy_magic[] = "\x93NUMPY";

// Size in bytes of one element of a descr such as "<f4" or "<U8" (UTF-32: 4 bytes a character).
int64_t item_size(const std::string& dtype, const std::string& what) {
    if (dtype.size() < 3) throw Error(what + ": unsupported dtype '" + dtype + "'");
    const char order = dtype[0], kind = dtype[1];
    int64_t n = 0;
    for (size_t i = 2; i < dtype.size(); ++i) {
        if (dtype[i] < '0' || dtype[i] > '9')
            throw Error(what + ": unsupported dtype '" + dtype + "'");
        n = n * 10 + (dtype[i] - '0');
    }
    if (order == '>')
        throw Error(what + ": big-endian arrays are not supported (dtype '" + dtype + "')");
    const bool known = (kind == 'f' && (n == 2 || n == 4 || n == 8)) ||
                       ((kind == 'i' || kind == 'u') && (n == 1 || n == 2 || n == 4 || n == 8)) ||
                       (kind == 'b' && n == 1) || (kind == 'U' && n >= 0);
    if (!known || (order != '<' && order != '|' && order != '='))
        throw Error(what + ": unsupported dtype '" + dtype + "'");
    return kind == 'U' ? 4 * n : n;
}

// The value of 'key': in a header dict, as raw text up to the next top-level comma/brace.
std::string header_field(const std::string& header, const std::string& key,
                         const std::string& what) {
    const size_t k = header.find("'" + key + "'");
    if (k == std::string::npos) throw Error(what + ": .npy header has no '" + key + "'");
    size_t p = header.find(':', k);
    if (p == std::string::npos) throw Error(what + ": malformed .npy header");
    ++p;
    while (p < header.size() && header[p] == ' ') ++p;
    size_t end = p;
    if (p < header.size() && header[p] == '(') {
        end = header.find(')', p);
        if (end == std::string::npos) throw Error(what + ": malformed shape in .npy header");
        return header.substr(p + 1, end - p - 1);
    }
    if (p < header.size() && (header[p] == '\'' || header[p] == '"')) {
        end = header.find(header[p], p + 1);
        if (end == std::string::npos) throw Error(what + ": malformed .npy header");
        return header.substr(p + 1, end - p - 1);
    }
    while (end < header.size() && header[end] != ',' && header[end] != '}') ++end;
    return header.substr(p, end - p);
}

std::vector<int64_t> parse_shape(const std::string& text, const std::string& what) {
    std::vector<int64_t> shape;
    size_t i = 0;
    while (i < text.size()) {
        while (i < text.size() && (text[i] == ' ' || text[i] == ',')) ++i;
        if (i == text.size()) break;
        int64_t d = 0;
        size_t digits = 0;
        while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
            d = d * 10 + (text[i++] - '0');
            if (++digits > 15) throw Error(what + ": shape dimension too large");
        }
        if (digits == 0) throw Error(what + ": malformed shape '(" + text + ")' in .npy header");
        shape.push_back(d);
    }
    return shape;
}

uint32_t crc32(const uint8_t* data, size_t n) {
    static const std::array<uint32_t, 256> table = [] {
        std::array<uint32_t, 256> t{};
        for (uint32_t i = 0; i < 256; ++i) {
            uint32_t c = i;
            for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            t[i] = c;
        }
        return t;
    }();
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; ++i) c = table[(c ^ data[i]) & 0xFF] ^ (c >> 8);
    return c ^ 0xFFFFFFFFu;
}

void put_le(std::vector<uint8_t>& out, uint64_t v, int bytes) {
    for (int i = 0; i < bytes; ++i) out.push_back(uint8_t(v >> (8 * i)));
}

uint64_t get_le(const std::vector<uint8_t>& in, size_t at, int bytes, const std::string& what) {
    if (at + size_t(bytes) > in.size()) throw Error(what + ": truncated file");
    uint64_t v = 0;
    for (int i = 0; i < bytes; ++i) v |= uint64_t(in[at + size_t(i)]) << (8 * i);
    return v;
}

} // namespace

NpyArray parse_npy(const std::vector<uint8_t>& file, const std::string& what) {
    if (file.size() < 10 || std::memcmp(file.data(), npy_magic, 6) != 0)
        throw Error(what + ": not a .npy file (bad magic)");
    const int major = file[6];
    if (major < 1 || major > 3)
        throw Error(what + ": unsupported .npy version " + std::to_string(major));
    const int len_bytes = major == 1 ? 2 : 4;
    const size_t header_len = size_t(get_le(file, 8, len_bytes, what));
    const size_t data_at = 8 + size_t(len_bytes) + header_len;
    if (data_at > file.size()) throw Error(what + ": truncated .npy header");
    const std::string header(file.begin() + 8 + len_bytes, file.begin() + long(data_at));

    NpyArray a;
    a.dtype = header_field(header, "descr", what);
    if (header_field(header, "fortran_order", what).find("True") != std::string::npos)
        throw Error(what +
                    ": Fortran-order arrays are not supported (save np.ascontiguousarray(x))");
    a.shape = parse_shape(header_field(header, "shape", what), what);
    const int64_t bytes = a.numel() * item_size(a.dtype, what);
    if (int64_t(file.size() - data_at) < bytes)
        throw Error(what + ": truncated data (" + std::to_string(file.size() - data_at) +
                    " bytes, shape needs " + std::to_string(bytes) + ")");
    a.bytes.assign(file.begin() + long(data_at), file.begin() + long(data_at) + bytes);
    return a;
}

std::vector<uint8_t> serialize_npy(const NpyArray& a) {
    // Python tuple syntax: "()", "(3,)", "(3, 4)".
    std::string shape;
    for (size_t i = 0; i < a.shape.size(); ++i)
        shape += (i ? ", " : "") + std::to_string(a.shape[i]);
    if (a.shape.size() == 1) shape += ",";
    std::string header =
        "{'descr': '" + a.dtype + "', 'fortran_order': False, 'shape': (" + shape + "), }";
    // Pad with spaces and a final newline so the data starts on a 64-byte boundary.
    const size_t total = 10 + header.size() + 1;
    header.append((64 - total % 64) % 64, ' ');
    header += '\n';
    std::vector<uint8_t> out(npy_magic, npy_magic + 6);
    out.push_back(1);
    out.push_back(0);
    put_le(out, header.size(), 2);
    out.insert(out.end(), header.begin(), header.end());
    out.insert(out.end(), a.bytes.begin(), a.bytes.end());
    return out;
}

NpyArray read_npy(const std::string& path) {
    return parse_npy(read_file(path), path);
}

void write_npy(const std::string& path, const NpyArray& a) {
    write_file_atomic(path, serialize_npy(a));
}

void write_npz(const std::string& path,
               const std::vector<std::pair<std::string, NpyArray>>& entries) {
    std::vector<uint8_t> zip, directory;
    for (const auto& [name, array] : entries) {
        const std::vector<uint8_t> data = serialize_npy(array);
        const std::string file = name + ".npy";
        if (data.size() >= 0xFFFFFFFFu || zip.size() >= 0xFFFFFFFFu)
            throw Error(path + ": entry '" + name + "' is too large for a non-ZIP64 archive");
        const uint32_t crc = crc32(data.data(), data.size());
        const size_t offset = zip.size();
        for (int central = 0; central < 2; ++central) {
            std::vector<uint8_t>& out = central ? directory : zip;
            put_le(out, central ? 0x02014b50u : 0x04034b50u, 4);
            if (central) put_le(out, 20, 2); // version made by
            put_le(out, 20, 2);              // version needed
            put_le(out, 0, 2);               // flags
            put_le(out, 0, 2);               // method: stored
            put_le(out, 0, 2);               // time
            put_le(out, 0x21, 2);            // date: 1980-01-01
            put_le(out, crc, 4);
            put_le(out, data.size(), 4);
            put_le(out, data.size(), 4);
            put_le(out, file.size(), 2);
            put_le(out, 0, 2); // extra length
            if (central) {
                put_le(out, 0, 2); // comment length
                put_le(out, 0, 2); // disk
                put_le(out, 0, 2); // internal attributes
                put_le(out, 0, 4); // external attributes
                put_le(out, offset, 4);
            }
            out.insert(out.end(), file.begin(), file.end());
        }
        zip.insert(zip.end(), data.begin(), data.end());
    }
    const size_t directory_at = zip.size();
    zip.insert(zip.end(), directory.begin(), directory.end());
    put_le(zip, 0x06054b50u, 4);
    put_le(zip, 0, 2);
    put_le(zip, 0, 2);
    put_le(zip, entries.size(), 2);
    put_le(zip, entries.size(), 2);
    put_le(zip, directory.size(), 4);
    put_le(zip, directory_at, 4);
    put_le(zip, 0, 2);
    write_file_atomic(path, zip);
}

std::map<std::string, NpyArray> read_npz(const std::string& path) {
    const std::vector<uint8_t> zip = read_file(path);
    std::map<std::string, NpyArray> out;
    size_t at = 0;
    while (at + 4 <= zip.size() && get_le(zip, at, 4, path) == 0x04034b50u) {
        const uint64_t flags = get_le(zip, at + 6, 2, path);
        const uint64_t method = get_le(zip, at + 8, 2, path);
        const uint32_t crc = uint32_t(get_le(zip, at + 14, 4, path));
        const size_t size = size_t(get_le(zip, at + 18, 4, path));
        const size_t name_len = size_t(get_le(zip, at + 26, 2, path));
        const size_t extra_len = size_t(get_le(zip, at + 28, 2, path));
        if (at + 30 + name_len > zip.size()) throw Error(path + ": truncated .npz entry name");
        std::string name(zip.begin() + long(at + 30), zip.begin() + long(at + 30 + name_len));
        if (method != 0 || (flags & 0x8))
            throw Error(path + ": entry '" + name +
                        "' is compressed; write it with np.savez, not np.savez_compressed");
        const size_t data_at = at + 30 + name_len + extra_len;
        if (data_at + size > zip.size())
            throw Error(path + ": truncated .npz entry '" + name + "'");
        const std::vector<uint8_t> data(zip.begin() + long(data_at),
                                        zip.begin() + long(data_at + size));
        if (crc32(data.data(), data.size()) != crc)
            throw Error(path + ": entry '" + name + "' fails its CRC-32 check (corrupt file)");
        if (name.size() > 4 && name.compare(name.size() - 4, 4, ".npy") == 0)
            name.resize(name.size() - 4);
        out[name] = parse_npy(data, path + ":" + name);
        at = data_at + size;
    }
    if (out.empty()) throw Error(path + ": not a .npz archive (no entries found)");
    return out;
}

std::vector<float> npy_to_float(const NpyArray& a, const std::string& what) {
    const int64_t size = item_size(a.dtype, what);
    const char kind = a.dtype[1];
    if (kind == 'U') throw Error(what + ": expected a numeric array, got strings");
    std::vector<float> out(size_t(a.numel()));
    for (size_t i = 0; i < out.size(); ++i) {
        const uint8_t* p = a.bytes.data() + i * size_t(size);
        uint64_t raw = 0;
        std::memcpy(&raw, p, size_t(size)); // little-endian host
        if (kind == 'f') {
            if (size == 2)
                out[i] = decode(uint32_t(raw), Format::fp16);
            else if (size == 4)
                out[i] = bits_to_float(uint32_t(raw));
            else {
                double d;
                std::memcpy(&d, &raw, 8);
                out[i] = float(d);
            }
        } else if (kind == 'i') {
            const int shift = 64 - 8 * int(size); // sign-extend
            out[i] = float(int64_t(raw << shift) >> shift);
        } else {
            out[i] = float(raw);
        }
    }
    return out;
}

NpyArray npy_from_float(const std::vector<int64_t>& shape, const std::vector<float>& values) {
    NpyArray a{"<f4", shape, std::vector<uint8_t>(values.size() * 4)};
    std::memcpy(a.bytes.data(), values.data(), a.bytes.size());
    return a;
}

NpyArray npy_from_i64(const std::vector<int64_t>& shape, const std::vector<int64_t>& values) {
    NpyArray a{"<i8", shape, std::vector<uint8_t>(values.size() * 8)};
    std::memcpy(a.bytes.data(), values.data(), a.bytes.size());
    return a;
}

NpyArray npy_from_u8(const std::vector<int64_t>& shape, const std::vector<uint8_t>& values) {
    return {"|u1", shape, values};
}

NpyArray npy_from_string(const std::string& ascii) {
    NpyArray a{"<U" + std::to_string(ascii.size()), {}, {}};
    for (char c : ascii) put_le(a.bytes, uint8_t(c), 4);
    return a;
}

std::string npy_to_string(const NpyArray& a, const std::string& what) {
    if (a.dtype.size() < 3 || a.dtype[1] != 'U' || !a.shape.empty())
        throw Error(what + ": expected a 0-d string array");
    std::string s;
    for (size_t i = 0; i + 4 <= a.bytes.size(); i += 4) {
        const uint32_t c = uint32_t(get_le(a.bytes, i, 4, what));
        if (c == 0) break;
        s += c < 128 ? char(c) : '?';
    }
    return s;
}

} // namespace octet
