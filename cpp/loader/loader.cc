// The file users list in plugin-files. Nix's C++ API is not stable: a
// plugin only works in the exact Nix whose headers built it, and loading it
// into another makes every `nix` command fail at dlopen (or misbehave). So
// this loader uses nothing of Nix but its version strings, found with
// dlsym rather than linked, and loads the build made for exactly that Nix
// from ../nix-hf/<build>/ beside its own folder: <build> is the version of
// an upstream Nix (2.35.2, 2.36.0pre20260822_88b09c6), and
// determinate-<version> for Determinate Nix, which reports the upstream
// version it is based on but has an ABI of its own. When there is none
// (or the Nix is Lix, whose plugin API is another), it says so in one line
// and lets Nix carry on without the plugin.
//
// The line deliberately does not begin with "warning:": NixOS checks
// nix.conf by running nix and treats any warning as a failure.

#include <dlfcn.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;

// `nix::nixVersion` and `nix::determinateNixVersion` (std::string) as
// libstdc++ and libc++ mangle them.
const char * const versionSymbols[] = {"_ZN3nix10nixVersionB5cxx11E", "_ZN3nix10nixVersionE"};
const char * const determinateSymbols[] = {
    "_ZN3nix21determinateNixVersionB5cxx11E", "_ZN3nix21determinateNixVersionE"};
// Upstream Nix and Determinate Nix register primops with nix::RegisterPrimOp;
// Lix has nix::PluginPrimOps::add instead.
const char * const registerPrimOp = "_ZN3nix14RegisterPrimOpC1EONS_6PrimOpE";
const char * const lixPrimOps = "_ZN3nix13PluginPrimOps3addEONS_13PrimOpDetailsE";

const std::string * findString(const char * const (&names)[2])
{
    for (auto name : names)
        if (auto p = dlsym(RTLD_DEFAULT, name))
            return static_cast<const std::string *>(p);
    return nullptr;
}

// Where this loader's builds are: <prefix>/lib/nix/nix-hf/<version>/.
fs::path buildsDir()
{
    Dl_info info{};
    if (dladdr(reinterpret_cast<void *>(&buildsDir), &info) == 0 || !info.dli_fname)
        return {};
    return fs::path(info.dli_fname).parent_path().parent_path() / "nix-hf";
}

// The builds in `dir`, by folder name.
std::vector<std::string> availableBuilds(const fs::path & dir)
{
    std::vector<std::string> builds;
    std::error_code ec;
    for (auto & entry : fs::directory_iterator(dir, ec))
        if (fs::exists(entry.path() / "libnix-hf.so", ec))
            builds.push_back(entry.path().filename().string());
    std::sort(builds.begin(), builds.end());
    return builds;
}

// How a build's folder names the Nix it is for.
std::string described(const std::string & build)
{
    const std::string det = "determinate-";
    if (build.rfind(det, 0) == 0)
        return "Determinate Nix " + build.substr(det.size());
    return "Nix " + build;
}

std::string joined(const std::vector<std::string> & builds)
{
    if (builds.empty())
        return "no Nix";
    std::string s;
    for (auto & b : builds)
        s += (s.empty() ? "" : ", ") + described(b);
    return s;
}

// The one line, after which Nix carries on without the plugin.
void stepAside(const std::string & why)
{
    std::fprintf(stderr,
        "nix-hf: %s; hf: inputs and builtins.fetchHuggingFace are unavailable in this nix. Use nix-hf built for "
        "this Nix (the NixOS, nix-darwin and home-manager modules build it for nix.package), or remove it from "
        "plugin-files.\n",
        why.c_str());
}

void load()
{
    auto dir = buildsDir();
    auto builds = availableBuilds(dir);

    auto running = findString(versionSymbols);
    if (!running) {
        stepAside("this nix does not say which Nix it is (no nix::nixVersion), and nix-hf has builds for "
            + joined(builds) + " only");
        return;
    }
    if (dlsym(RTLD_DEFAULT, lixPrimOps) || !dlsym(RTLD_DEFAULT, registerPrimOp)) {
        stepAside("this is Lix " + *running + ", whose plugin API is not upstream Nix's, and nix-hf has builds for "
            + joined(builds) + " only");
        return;
    }
    std::string build, which;
    if (auto determinate = findString(determinateSymbols)) {
        build = "determinate-" + *determinate;
        which = "Determinate Nix " + *determinate + " (Nix " + *running + ")";
    } else {
        build = *running;
        which = "Nix " + *running;
    }
    if (std::find(builds.begin(), builds.end(), build) == builds.end()) {
        stepAside("no build for " + which + " (this nix-hf has builds for " + joined(builds) + " in " + dir.string()
            + ")");
        return;
    }

    auto path = dir / build / "libnix-hf.so";
    void * handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!handle) {
        auto why = dlerror();
        stepAside("cannot load " + path.string() + " (" + (why ? why : "unknown error") + ")");
        return;
    }
    auto entry = reinterpret_cast<void (*)()>(dlsym(handle, "nix_plugin_entry"));
    if (!entry) {
        stepAside(path.string() + " is not a nix-hf build (it has no nix_plugin_entry)");
        return;
    }
    entry();
}

} // namespace

extern "C" __attribute__((visibility("default"))) void nix_plugin_entry()
{
    // Whatever goes wrong here, nix itself must go on.
    try {
        load();
    } catch (std::exception & e) {
        stepAside(std::string("could not load the plugin: ") + e.what());
    } catch (...) {
        stepAside("could not load the plugin");
    }
}
