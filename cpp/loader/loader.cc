// The file users list in plugin-files. Nix's C++ API is not stable: a
// plugin only works in the exact Nix whose headers built it, and loading it
// into another makes every `nix` command fail at dlopen (or misbehave). So
// this loader uses nothing of Nix but its version string, found with dlsym
// rather than linked, and loads the build made for exactly that version
// from ../nix-hf/<version>/ beside its own folder. When there is none (or
// the Nix is one whose ABI differs under an upstream version number), it
// says so in one line and lets Nix carry on without the plugin.
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

std::vector<std::string> availableVersions(const fs::path & dir)
{
    std::vector<std::string> versions;
    std::error_code ec;
    for (auto & entry : fs::directory_iterator(dir, ec))
        if (fs::exists(entry.path() / "libnix-hf.so", ec))
            versions.push_back(entry.path().filename().string());
    std::sort(versions.begin(), versions.end());
    return versions;
}

std::string joined(const std::vector<std::string> & versions)
{
    if (versions.empty())
        return "none";
    std::string s;
    for (auto & v : versions)
        s += (s.empty() ? "" : ", ") + v;
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
    auto versions = availableVersions(dir);

    auto running = findString(versionSymbols);
    if (!running) {
        stepAside("this nix does not say which Nix it is (no nix::nixVersion), and nix-hf has builds for Nix "
            + joined(versions) + " only");
        return;
    }
    if (auto determinate = findString(determinateSymbols)) {
        stepAside("this is Determinate Nix " + *determinate + " (Nix " + *running
            + "), whose plugin ABI differs from upstream Nix's, and nix-hf has builds for upstream Nix "
            + joined(versions) + " only");
        return;
    }
    if (std::find(versions.begin(), versions.end(), *running) == versions.end()) {
        stepAside("no build for Nix " + *running + " (this nix-hf has builds for Nix " + joined(versions) + " in "
            + dir.string() + ")");
        return;
    }

    auto build = dir / *running / "libnix-hf.so";
    void * handle = dlopen(build.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!handle) {
        auto why = dlerror();
        stepAside("cannot load " + build.string() + " (" + (why ? why : "unknown error") + ")");
        return;
    }
    auto entry = reinterpret_cast<void (*)()>(dlsym(handle, "nix_plugin_entry"));
    if (!entry) {
        stepAside(build.string() + " is not a nix-hf build (it has no nix_plugin_entry)");
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
