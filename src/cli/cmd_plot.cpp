// `octet plot`: loss curves of several runs (JSON Lines metrics) in one PNG, drawn by gnuplot,
// with a second panel for the relative gap of each run to the first.
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <ostream>
#include <sstream>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "common/error.h"
#include "io/json.h"

namespace octet {

static const char* plot_help = R"(usage: octet plot RUN1.jsonl [RUN2.jsonl ...] -o curves.png

Loss curves (training loss, and validation loss where evaluated) of the runs in one PNG, with the
relative gap of each run's training loss to the first run's underneath. Needs gnuplot
(Debian: gnuplot-nox; scripts/setup.sh installs it).
)";

namespace {

struct Run {
    std::string name;
    std::map<int64_t, double> loss, eval;
};

Run read_run(const std::string& path) {
    std::ifstream in(path);
    if (!in) throw Error("cannot open '" + path + "'");
    Run r;
    r.name = std::filesystem::path(path).stem().string();
    std::string line;
    int64_t line_no = 0;
    while (std::getline(in, line)) {
        ++line_no;
        if (line.empty()) continue;
        const JsonValue v = parse_json(line, path + ":" + std::to_string(line_no));
        const JsonValue* step = v.find("step");
        if (!step) continue; // the header
        if (const JsonValue* l = v.find("loss")) r.loss[int64_t(step->number)] = l->number;
        if (const JsonValue* e = v.find("eval_loss")) r.eval[int64_t(step->number)] = e->number;
    }
    if (r.loss.empty()) throw Error(path + ": no metrics lines with a step and a loss");
    return r;
}

std::string quoted(const std::string& s) {
    std::string out = "'";
    for (char c : s) out += c == '\'' ? std::string("''") : std::string(1, c);
    return out + "'";
}

// One color per run, distinct for up to 12 runs (gnuplot's own line types repeat after 8).
std::string run_color(size_t i) {
    static const char* const colors[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728",
                                         "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                                         "#bcbd22", "#17becf", "#000000", "#aec7e8"};
    return std::string("rgb '") + colors[i % std::size(colors)] + "'";
}

// The relative gap, in %, of each step's loss in `run` to the same step's in `ref`.
void write_gaps(std::ostream& out, const std::map<int64_t, double>& run,
                const std::map<int64_t, double>& ref) {
    for (const auto& [s, l] : run) {
        auto r = ref.find(s);
        if (r != ref.end() && r->second != 0)
            out << s << " " << 100 * (l - r->second) / r->second << "\n";
    }
}

// One panel: every run's line, then the runs' points (where a file is named) over all lines.
void plot_panel(std::ostream& script, const std::vector<Run>& runs,
                const std::vector<std::string>& lines, const std::vector<std::string>& points) {
    script << "plot ";
    for (size_t i = 0; i < runs.size(); ++i)
        script << (i ? ", " : "") << quoted(lines[i]) << " using 1:2 with lines lw 1.3 lc "
               << run_color(i) << " title " << quoted(runs[i].name);
    for (size_t i = 0; i < runs.size(); ++i)
        if (!points[i].empty())
            script << ", " << quoted(points[i]) << " using 1:2 with points pt 7 ps 0.9 lc "
                   << run_color(i) << " notitle";
    script << "\n";
}

} // namespace

int cmd_plot(const std::vector<std::string>& argv, std::ostream& out) {
    std::vector<std::string> inputs;
    std::string output;
    for (size_t i = 0; i < argv.size(); ++i) {
        if (argv[i] == "--help" || argv[i] == "-h") {
            out << plot_help;
            return 0;
        }
        if (argv[i] == "-o" || argv[i] == "--out") {
            if (i + 1 >= argv.size()) throw Error(argv[i] + " needs a file name");
            output = argv[++i];
        } else if (argv[i].rfind("-", 0) == 0) {
            throw Error("unknown flag '" + argv[i] + "' (see octet plot --help)");
        } else {
            inputs.push_back(argv[i]);
        }
    }
    if (inputs.empty() || output.empty())
        throw Error("need at least one metrics file and -o OUTPUT.png");
    std::vector<Run> runs;
    for (const std::string& p : inputs) runs.push_back(read_run(p));

    const std::filesystem::path tmp =
        std::filesystem::temp_directory_path() / ("octet-plot-" + std::to_string(::getpid()));
    std::filesystem::create_directories(tmp);
    std::ostringstream script;
    script << "set terminal pngcairo size 1100,800 font ',10'\nset output " << quoted(output)
           << "\n"
           << "set multiplot layout 2,1\nset grid\nset key top right\nset xlabel 'step'\nset "
              "ylabel 'loss'\n"
           << "set title 'Loss (lines: training, points: validation)'\n";
    const auto file = [&](const char* what, size_t i) {
        return (tmp / (what + std::to_string(i) + ".dat")).string();
    };
    std::vector<std::string> lines(runs.size()), points(runs.size());
    for (size_t i = 0; i < runs.size(); ++i) {
        std::ofstream d(lines[i] = file("run", i));
        for (const auto& [s, l] : runs[i].loss) d << s << " " << l << "\n";
        if (runs[i].eval.empty()) continue;
        std::ofstream e(points[i] = file("eval", i));
        for (const auto& [s, l] : runs[i].eval) e << s << " " << l << "\n";
    }
    plot_panel(script, runs, lines, points);
    script << "set ylabel 'gap to " << runs[0].name << " (%)'\nset title 'Relative gap to "
           << runs[0].name << " (lines: training loss, points: validation loss)'\n";
    for (size_t i = 0; i < runs.size(); ++i) {
        std::ofstream g(lines[i] = file("gap", i));
        write_gaps(g, runs[i].loss, runs[0].loss);
        points[i].clear();
        if (runs[i].eval.empty() || runs[0].eval.empty()) continue;
        std::ofstream e(points[i] = file("eval_gap", i));
        write_gaps(e, runs[i].eval, runs[0].eval);
    }
    plot_panel(script, runs, lines, points);
    script << "unset multiplot\n";
    const std::string script_path = (tmp / "plot.gp").string();
    { std::ofstream(script_path) << script.str(); }
    const std::string log_path = (tmp / "gnuplot.log").string();
    const int status = std::system(
        ("gnuplot " + quoted(script_path) + " > " + quoted(log_path) + " 2>&1").c_str());
    std::string gnuplot_log;
    if (status != 0) {
        std::ifstream in(log_path);
        std::getline(in, gnuplot_log, '\0');
    }
    std::filesystem::remove_all(tmp);
    if (status != 0)
        throw Error("gnuplot failed (exit " + std::to_string(WEXITSTATUS(status)) +
                    "; is it installed? apt-get install gnuplot-nox): " + gnuplot_log);
    out << "wrote " << output << " (" << runs.size() << " run" << (runs.size() > 1 ? "s" : "")
        << ")\n";
    return 0;
}

} // namespace octet
