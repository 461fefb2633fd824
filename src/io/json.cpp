// Recursive-descent JSON parser (RFC 8259 subset: no surrogate-pair decoding beyond \uXXXX →
// UTF-8).
#include "io/json.h"

#include <cstdio>
#include <cstdlib>

#include "common/error.h"

namespace octet {

const JsonValue* JsonValue::find(const std::string& key) const {
    auto it = object.find(key);
    return it == object.end() ? nullptr : &it->second;
}

namespace {

struct Parser {
    const std::string& s;
    const std::string& what;
    size_t at = 0;
    int depth = 0;

    [[noreturn]] void fail(const std::string& why) const {
        throw Error(what + ": malformed JSON at byte " + std::to_string(at) + ": " + why);
    }
    void skip() {
        while (at < s.size() && (s[at] == ' ' || s[at] == '\n' || s[at] == '\r' || s[at] == '\t'))
            ++at;
    }
    bool eat(char c) {
        skip();
        if (at < s.size() && s[at] == c) {
            ++at;
            return true;
        }
        return false;
    }
    void expect(char c) {
        if (!eat(c)) fail(std::string("expected '") + c + "'");
    }
    std::string parse_string() {
        expect('"');
        std::string out;
        while (true) {
            if (at >= s.size()) fail("unterminated string");
            const char c = s[at++];
            if (c == '"') return out;
            if (c != '\\') {
                out += c;
                continue;
            }
            if (at >= s.size()) fail("unterminated escape");
            const char e = s[at++];
            switch (e) {
            case '"':
                out += '"';
                break;
            case '\\':
                out += '\\';
                break;
            case '/':
                out += '/';
                break;
            case 'b':
                out += '\b';
                break;
            case 'f':
                out += '\f';
                break;
            case 'n':
                out += '\n';
                break;
            case 'r':
                out += '\r';
                break;
            case 't':
                out += '\t';
                break;
            case 'u': {
                if (at + 4 > s.size()) fail("short \\u escape");
                const unsigned cp = unsigned(std::strtoul(s.substr(at, 4).c_str(), nullptr, 16));
                at += 4;
                if (cp < 0x80)
                    out += char(cp);
                else if (cp < 0x800)
                    out += char(0xC0 | (cp >> 6)), out += char(0x80 | (cp & 0x3F));
                else
                    out += char(0xE0 | (cp >> 12)), out += char(0x80 | ((cp >> 6) & 0x3F)),
                        out += char(0x80 | (cp & 0x3F));
                break;
            }
            default:
                fail("bad escape");
            }
        }
    }
    JsonValue parse_value() {
        if (++depth > 64) fail("nested too deeply");
        skip();
        JsonValue v;
        if (at >= s.size()) fail("unexpected end");
        const char c = s[at];
        if (c == '{') {
            ++at;
            v.kind = JsonValue::Kind::object;
            if (!eat('}')) {
                do {
                    skip();
                    std::string key = parse_string();
                    expect(':');
                    v.object[key] = parse_value();
                } while (eat(','));
                expect('}');
            }
        } else if (c == '[') {
            ++at;
            v.kind = JsonValue::Kind::array;
            if (!eat(']')) {
                do v.array.push_back(parse_value());
                while (eat(','));
                expect(']');
            }
        } else if (c == '"') {
            v.kind = JsonValue::Kind::string;
            v.string = parse_string();
        } else if (s.compare(at, 4, "true") == 0 || s.compare(at, 5, "false") == 0) {
            v.kind = JsonValue::Kind::boolean;
            v.boolean = s[at] == 't';
            at += v.boolean ? 4 : 5;
        } else if (s.compare(at, 4, "null") == 0) {
            at += 4;
        } else {
            char* end = nullptr;
            v.number = std::strtod(s.c_str() + at, &end);
            if (end == s.c_str() + at) fail("unexpected character");
            v.kind = JsonValue::Kind::number;
            at = size_t(end - s.c_str());
        }
        --depth;
        return v;
    }
};

} // namespace

JsonValue parse_json(const std::string& text, const std::string& what) {
    Parser p{text, what};
    JsonValue v = p.parse_value();
    p.skip();
    if (p.at != text.size()) p.fail("trailing characters");
    return v;
}

std::string json_escape(const std::string& s) {
    std::string out = "\"";
    for (char c : s) {
        switch (c) {
        case '"':
            out += "\\\"";
            break;
        case '\\':
            out += "\\\\";
            break;
        case '\n':
            out += "\\n";
            break;
        case '\r':
            out += "\\r";
            break;
        case '\t':
            out += "\\t";
            break;
        default:
            if (static_cast<unsigned char>(c) < 0x20) {
                char buf[8];
                std::snprintf(buf, sizeof buf, "\\u%04x", c);
                out += buf;
            } else {
                out += c;
            }
        }
    }
    return out + "\"";
}

} // namespace octet
