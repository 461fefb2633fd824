// Training configuration: keys, types, TOML loading, overrides and validation (train_config.h).
#include "train/train_config.h"

#include <cpptoml.h>

#include <charconv>
#include <cmath>
#include <functional>
#include <sstream>

#include "common/error.h"
#include "common/strings.h"
#include "io/atomic_file.h"
#include "recipe/policy.h"

namespace octet {

namespace {

// One configuration key: how to read it from text or TOML, and how to print it.
struct Key {
    std::string name; // "section.key"
    enum class Type { integer, number, boolean, string } type;
    std::function<void(TrainConfig&, const std::string&)> set; // from text, already type-checked
    std::function<std::string(const TrainConfig&)> get;
};

std::string fmt_double(double v) {
    std::ostringstream s;
    s.precision(17);
    s << v;
    std::string out = s.str();
    if (out.find_first_of(".eE") == std::string::npos) out += ".0";
    return out;
}

int64_t parse_int(const std::string& key, const std::string& v) {
    int64_t out = 0;
    auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
    if (ec != std::errc() || end != v.data() + v.size())
        throw Error("config key " + key + ": expected an integer, got '" + v + "'");
    return out;
}

double parse_number(const std::string& key, const std::string& v) {
    size_t used = 0;
    double out = 0;
    try {
        out = std::stod(v, &used);
    } catch (const std::exception&) {
        used = 0;
    }
    if (used == 0 || used != v.size())
        throw Error("config key " + key + ": expected a number, got '" + v + "'");
    return out;
}

bool parse_bool(const std::string& key, const std::string& v) {
    if (v == "true") return true;
    if (v == "false") return false;
    throw Error("config key " + key + ": expected true or false, got '" + v + "'");
}

#define OCTET_INT(name, field)                                                                     \
    Key {                                                                                          \
        name, Key::Type::integer,                                                                  \
            [](TrainConfig& c, const std::string& v) { c.field = parse_int(name, v); },            \
            [](const TrainConfig& c) { return std::to_string(c.field); }                           \
    }
#define OCTET_NUM(name, field)                                                                     \
    Key {                                                                                          \
        name, Key::Type::number,                                                                   \
            [](TrainConfig& c, const std::string& v) { c.field = parse_number(name, v); },         \
            [](const TrainConfig& c) { return fmt_double(c.field); }                               \
    }
#define OCTET_BOOL(name, field)                                                                    \
    Key {                                                                                          \
        name, Key::Type::boolean,                                                                  \
            [](TrainConfig& c, const std::string& v) { c.field = parse_bool(name, v); },           \
            [](const TrainConfig& c) { return std::string(c.field ? "true" : "false"); }           \
    }
#define OCTET_STR(name, field)                                                                     \
    Key {                                                                                          \
        name, Key::Type::string, [](TrainConfig& c, const std::string& v) { c.field = v; },        \
            [](const TrainConfig& c) { return "\"" + c.field + "\""; }                             \
    }

const std::vector<Key>& keys() {
    static const std::vector<Key> all = {
        Key{"model.flavor", Key::Type::string,
            [](TrainConfig& c, const std::string& v) {
                if (v != "gpt2" && v != "llama")
                    throw Error("config key model.flavor: expected \"gpt2\" or \"llama\", got '" +
                                v + "'");
                c.model.flavor = v == "gpt2" ? Flavor::gpt2 : Flavor::llama;
            },
            [](const TrainConfig& c) {
                return std::string("\"") + flavor_name(c.model.flavor) + "\"";
            }},
        OCTET_INT("model.n_layer", model.n_layer),
        OCTET_INT("model.n_head", model.n_head),
        OCTET_INT("model.d_model", model.d_model),
        OCTET_INT("model.d_ff", model.d_ff),
        OCTET_INT("model.seq_len", model.seq_len),
        OCTET_STR("data.dir", data_dir),
        OCTET_STR("train.recipe", recipe),
        OCTET_STR("train.device", device),
        OCTET_INT("train.steps", steps),
        OCTET_INT("train.batch_size", batch_size),
        OCTET_INT("train.batch_tokens", batch_tokens),
        OCTET_NUM("train.lr", lr),
        OCTET_NUM("train.min_lr_ratio", min_lr_ratio),
        OCTET_INT("train.warmup_steps", warmup_steps),
        OCTET_NUM("train.weight_decay", weight_decay),
        OCTET_NUM("train.beta1", beta1),
        OCTET_NUM("train.beta2", beta2),
        OCTET_NUM("train.grad_clip", grad_clip),
        OCTET_INT("train.seed", seed),
        OCTET_BOOL("train.cuda_graphs", cuda_graphs),
        OCTET_INT("eval.every", eval_every),
        OCTET_INT("eval.batches", eval_batches),
        OCTET_INT("sample.every", sample_every),
        OCTET_INT("sample.tokens", sample_tokens),
        OCTET_STR("sample.prompt", sample_prompt),
        OCTET_NUM("sample.temperature", temperature),
        OCTET_INT("sample.top_k", top_k),
        OCTET_STR("output.dir", out_dir),
        OCTET_INT("output.checkpoint_every", checkpoint_every),
    };
    return all;
}

const Key& find_key(const std::string& name) {
    for (const Key& k : keys())
        if (k.name == name) return k;
    std::vector<std::string> names;
    for (const Key& k : keys()) names.push_back(k.name);
    throw Error("unknown config key '" + name + "' (known: " + join(names) + ")");
}

// A TOML value as the text apply_override would take, checked against the key's type.
std::string toml_value_text(const Key& key, const std::shared_ptr<cpptoml::base>& v) {
    switch (key.type) {
    case Key::Type::integer:
        if (auto i = v->as<int64_t>()) return std::to_string(i->get());
        throw Error("config key " + key.name + ": expected an integer");
    case Key::Type::number:
        if (auto d = v->as<double>()) return fmt_double(d->get());
        if (auto i = v->as<int64_t>()) return std::to_string(i->get());
        throw Error("config key " + key.name + ": expected a number");
    case Key::Type::boolean:
        if (auto b = v->as<bool>()) return b->get() ? "true" : "false";
        throw Error("config key " + key.name + ": expected true or false");
    default:
        if (auto s = v->as<std::string>()) return s->get();
        throw Error("config key " + key.name + ": expected a string");
    }
}

} // namespace

int64_t TrainConfig::accumulation_steps() const {
    const int64_t per_batch = batch_size * model.seq_len;
    return batch_tokens <= 0 ? 1 : std::max<int64_t>(1, batch_tokens / per_batch);
}

double TrainConfig::lr_at(int64_t step) const {
    if (step < warmup_steps) return lr * double(step + 1) / double(warmup_steps);
    const double span = double(std::max<int64_t>(1, steps - warmup_steps));
    const double progress = std::min(1.0, double(step - warmup_steps) / span);
    return lr * (min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + std::cos(M_PI * progress)));
}

std::string TrainConfig::to_toml() const {
    std::string out, section;
    for (const Key& k : keys()) {
        const std::string sec = k.name.substr(0, k.name.find('.'));
        if (sec != section) {
            out += (out.empty() ? "[" : "\n[") + sec + "]\n";
            section = sec;
        }
        out += k.name.substr(sec.size() + 1) + " = " + k.get(*this) + "\n";
    }
    return out;
}

TrainConfig default_train_config() {
    TrainConfig c;
    c.model.flavor = Flavor::gpt2;
    c.model.n_layer = 4;
    c.model.n_head = 4;
    c.model.d_model = 128;
    c.model.seq_len = 128;
    return c;
}

void apply_override(TrainConfig& config, const std::string& assignment) {
    const size_t eq = assignment.find('=');
    if (eq == std::string::npos)
        throw Error("--set expects section.key=value, got '" + assignment + "'");
    const Key& key = find_key(assignment.substr(0, eq));
    std::string value = assignment.substr(eq + 1);
    if (key.type == Key::Type::boolean) parse_bool(key.name, value);
    key.set(config, value);
}

TrainConfig load_train_config(const std::string& path) {
    const std::vector<uint8_t> bytes = read_file(path);
    return parse_train_config(std::string(bytes.begin(), bytes.end()), path);
}

TrainConfig parse_train_config(const std::string& toml, const std::string& path) {
    std::shared_ptr<cpptoml::table> table;
    try {
        std::istringstream in(toml);
        cpptoml::parser parser(in);
        table = parser.parse();
    } catch (const cpptoml::parse_exception& e) {
        throw Error(path + ": " + e.what());
    }
    TrainConfig config = default_train_config();
    for (const auto& [section, value] : *table) {
        auto sub = value->as_table();
        if (!sub) throw Error(path + ": top-level key '" + section + "' must be a [section]");
        for (const auto& [name, v] : *sub) {
            const Key& key = find_key(section + "." + name);
            try {
                key.set(config, toml_value_text(key, v));
            } catch (const Error& e) {
                throw Error(path + ": " + e.what());
            }
        }
    }
    return config;
}

void validate(const TrainConfig& c) {
    auto positive = [](int64_t v, const char* key) {
        if (v <= 0)
            throw Error(std::string("config key ") + key + " must be positive (got " +
                        std::to_string(v) + ")");
    };
    auto non_negative = [](int64_t v, const char* key) {
        if (v < 0)
            throw Error(std::string("config key ") + key + " must not be negative (got " +
                        std::to_string(v) + ")");
    };
    positive(c.steps, "train.steps");
    positive(c.batch_size, "train.batch_size");
    non_negative(c.batch_tokens, "train.batch_tokens");
    non_negative(c.warmup_steps, "train.warmup_steps");
    non_negative(c.eval_every, "eval.every");
    positive(c.eval_batches, "eval.batches");
    non_negative(c.sample_every, "sample.every");
    non_negative(c.sample_tokens, "sample.tokens");
    positive(c.top_k, "sample.top_k");
    non_negative(c.checkpoint_every, "output.checkpoint_every");
    if (!(c.lr > 0 && c.lr < 1)) throw Error("config key train.lr must lie in (0, 1)");
    if (!(c.min_lr_ratio >= 0 && c.min_lr_ratio <= 1))
        throw Error("config key train.min_lr_ratio must lie in [0, 1]");
    if (!(c.weight_decay >= 0)) throw Error("config key train.weight_decay must not be negative");
    if (!(c.beta1 >= 0 && c.beta1 < 1)) throw Error("config key train.beta1 must lie in [0, 1)");
    if (!(c.beta2 > 0 && c.beta2 < 1)) throw Error("config key train.beta2 must lie in (0, 1)");
    if (!(c.grad_clip >= 0)) throw Error("config key train.grad_clip must not be negative");
    if (!(c.temperature > 0)) throw Error("config key sample.temperature must be positive");
    if (c.device != "auto" && c.device != "cpu" && c.device != "cuda")
        throw Error("config key train.device must be auto, cpu or cuda (got '" + c.device + "')");
    if (c.data_dir.empty()) throw Error("config key data.dir must not be empty");
    if (c.out_dir.empty()) throw Error("config key output.dir must not be empty");
    make_policy(c.recipe); // names the recipe or option that is wrong
    ModelConfig m = c.model;
    m.vocab_size = std::max<int64_t>(m.vocab_size, 1);
    try {
        m.validate();
    } catch (const Error& e) {
        throw Error(std::string("config: ") + e.what());
    }
}

} // namespace octet
