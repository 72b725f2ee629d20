#pragma once
// Every difference between the Nix versions nix-hf supports (2.26 to 2.35)
// lives here and nowhere else. The rest of cpp/ includes this header instead
// of Nix's, and uses the NIXHF_* names below.
//
// NIX_VERSION_MAJOR/MINOR come from meson (pkg-config --modversion), since
// Nix has no public version macro. Only 2.26 can be built on our machines
// (../shared/nix-dev); the other branches follow ../shared/notes/nix-plugin-api.md
// and must be checked whenever a newer Nix can be built.

#if !defined(NIX_VERSION_MAJOR) || !defined(NIX_VERSION_MINOR)
#  error "build with -DNIX_VERSION_MAJOR=… -DNIX_VERSION_MINOR=… (meson.build derives them)"
#endif

#define NIXHF_NIX_AT_LEAST(major, minor) \
    (NIX_VERSION_MAJOR > (major) || (NIX_VERSION_MAJOR == (major) && NIX_VERSION_MINOR >= (minor)))

#if !NIXHF_NIX_AT_LEAST(2, 26)
#  error "nix-hf needs Nix 2.26 or newer"
#endif

// Header layout: flat under include/nix up to 2.27 (with forced config
// headers, see meson.build), per-library directories from 2.28.
#if NIXHF_NIX_AT_LEAST(2, 28)
#  include <nix/expr/eval.hh>
#  include <nix/expr/primops.hh>
#  include <nix/expr/eval-settings.hh>
#  include <nix/fetchers/fetchers.hh>
#  include <nix/fetchers/fetch-settings.hh>
#  include <nix/fetchers/cache.hh>
#  include <nix/fetchers/store-path-accessor.hh>
#  include <nix/store/store-api.hh>
#  include <nix/util/url.hh>
#  include <nix/util/logging.hh>
#  include <nix/util/signals.hh>
#  include <nix/util/posix-source-accessor.hh>
#  include <nix/store/globals.hh>
#  include <nix/util/config-global.hh>
#  include <nix/expr/fetch-tree.hh>
#  include <nix/store/local-store.hh>
#  include <nix/store/pathlocks.hh>
#  include <nix/store/posix-fs-canonicalise.hh>
#else
#  include "eval.hh"
#  include "primops.hh"
#  include "eval-settings.hh"
#  include "fetchers.hh"
#  include "fetch-settings.hh"
#  include "cache.hh"
#  include "store-path-accessor.hh"
#  include "store-api.hh"
#  include "url.hh"
#  include "logging.hh"
#  include "signals.hh"
#  include "posix-source-accessor.hh"
#  include "globals.hh"
#  include "config-global.hh"
#  include "flake/flake.hh"
#  include "local-store.hh"
#  include "pathlocks.hh"
#  include "posix-fs-canonicalise.hh"
#endif

namespace nixhf::compat {

using nix::fetchers::Input;
using nix::fetchers::Settings;

// InputScheme method signatures. Up to 2.29 the store comes as ref<Store> and
// the fetcher settings hang off the Input; later they are passed in.
#if NIXHF_NIX_AT_LEAST(2, 30)
#  define NIXHF_GET_ACCESSOR_PARAMS const nix::fetchers::Settings & settings, nix::Store & store, const nix::fetchers::Input & input
#  define NIXHF_IS_LOCKED_PARAMS const nix::fetchers::Settings & settings, const nix::fetchers::Input & input
#  define NIXHF_FINGERPRINT_PARAMS nix::Store & store, const nix::fetchers::Input & input
#  define NIXHF_ACCESSOR_STORE(s) (s)
#  define NIXHF_ACCESSOR_SETTINGS(input) (settings)
#else
#  define NIXHF_GET_ACCESSOR_PARAMS nix::ref<nix::Store> storeRef, const nix::fetchers::Input & input
#  define NIXHF_IS_LOCKED_PARAMS const nix::fetchers::Input & input
#  define NIXHF_FINGERPRINT_PARAMS nix::ref<nix::Store> store, const nix::fetchers::Input & input
#  define NIXHF_ACCESSOR_STORE(s) (*s##Ref)
#  define NIXHF_ACCESSOR_SETTINGS(input) (*(input).settings)
#endif

// allowedAttrs(): a StringSet up to 2.32, a documented map from 2.33.
#if NIXHF_NIX_AT_LEAST(2, 33)
using AllowedAttrs = std::map<std::string, nix::fetchers::AttributeInfo>;
inline const AllowedAttrs & allowedAttrs(const std::vector<std::string> & names)
{
    static const AllowedAttrs attrs = [&] {
        AllowedAttrs m;
        for (auto & n : names)
            m.emplace(n, nix::fetchers::AttributeInfo{});
        return m;
    }();
    return attrs;
}
#  define NIXHF_ALLOWED_ATTRS_TYPE const std::map<std::string, nix::fetchers::AttributeInfo> &
#else
inline nix::StringSet allowedAttrs(const std::vector<std::string> & names)
{
    return nix::StringSet(names.begin(), names.end());
}
#  define NIXHF_ALLOWED_ATTRS_TYPE nix::StringSet
#endif

// A fresh Input: it carried a pointer to the settings up to 2.32.
inline Input makeInput([[maybe_unused]] const Settings & settings)
{
#if NIXHF_NIX_AT_LEAST(2, 33)
    return Input{};
#else
    return Input{settings};
#endif
}

// The fetcher cache: a global up to 2.29, owned by the settings later.
inline nix::ref<nix::fetchers::Cache> cache([[maybe_unused]] const Settings & settings)
{
#if NIXHF_NIX_AT_LEAST(2, 30)
    return settings.getCache();
#else
    return nix::fetchers::getCache();
#endif
}

// The cache entry Input::fetchToStore consults before copying an accessor's
// tree into the store. Seeding it with the path the scheme already added
// saves a second full copy of multi-GB snapshots.
inline nix::fetchers::Cache::Key fetchToStoreKey(const std::string & name, const std::string & fingerprint)
{
#if NIXHF_NIX_AT_LEAST(2, 34)
    return {"sourcePathToHash", {
        {"fingerprint", fingerprint},
        {"method", std::string{nix::ContentAddressMethod(nix::ContentAddressMethod::Raw::NixArchive).render()}},
        {"path", "/"}}};
#else
    return {"fetchToStore", {
        {"name", name},
        {"fingerprint", fingerprint},
        {"method", std::string{nix::ContentAddressMethod(nix::ContentAddressMethod::Raw::NixArchive).render()}},
        {"path", "/"}}};
#endif
}

// PrimOp: `doc` became std::optional<std::string> in 2.33, `fun` was renamed
// `impl` in 2.34.
inline nix::PrimOp makePrimOp(
    std::string name, std::vector<std::string> args, const char * doc,
    std::function<void(nix::EvalState &, nix::PosIdx, nix::Value **, nix::Value &)> fn)
{
    nix::PrimOp p;
    p.name = std::move(name);
    p.arity = args.size();
    p.args = std::move(args);
#if NIXHF_NIX_AT_LEAST(2, 33)
    p.doc = std::string(doc);
#else
    p.doc = doc;
#endif
#if NIXHF_NIX_AT_LEAST(2, 34)
    p.impl = std::move(fn);
#else
    p.fun = std::move(fn);
#endif
    return p;
}

// Reading evaluated values: list iteration and integers changed shape after
// 2.26 (listItems() became listView(); NixInt gained checked arithmetic).
#if NIXHF_NIX_AT_LEAST(2, 30)
inline auto listItems(nix::Value & v) { return v.listView(); }
#else
inline auto listItems(nix::Value & v) { return v.listItems(); }
#endif
inline int64_t intValue(nix::Value & v) { return v.integer().value; }

// The fetcher settings an evaluation uses.
inline const Settings & fetchSettings(nix::EvalState & state)
{
    return state.fetchSettings;
}

} // namespace nixhf::compat
