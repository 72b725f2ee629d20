#pragma once
// Every difference between the Nix versions nix-hf supports (nix/versions)
// lives here and nowhere else; each branch is compiled and tested in CI.
// The rest of cpp/ includes this header instead of Nix's.
//
// meson.build defines, from pkg-config and Nix's own headers (Nix has no
// version macro):
//   NIXHF_NIX_MINOR     34, 35 or 36 (2.36pre, upstream master);
//   NIXHF_DETERMINATE   1 for Determinate Nix (which reports the upstream
//                       release it is based on, 2.35 for 3.22), else 0.
// meson refuses any other Nix, so every branch below is one of those.

#if !defined(NIXHF_NIX_MAJOR) || !defined(NIXHF_NIX_MINOR) || !defined(NIXHF_DETERMINATE)
#  error "build with meson (meson.build defines NIXHF_NIX_MAJOR, NIXHF_NIX_MINOR and NIXHF_DETERMINATE)"
#endif

#include <array>

#include <nix/expr/eval.hh>
#include <nix/expr/primops.hh>
#include <nix/expr/eval-settings.hh>
#include <nix/fetchers/fetchers.hh>
#include <nix/fetchers/fetch-settings.hh>
#include <nix/fetchers/fetch-to-store.hh>
#include <nix/fetchers/cache.hh>
#include <nix/fetchers/filtering-source-accessor.hh>
#include <nix/fetchers/input-cache.hh>
#include <nix/fetchers/registry.hh>
#include <nix/store/store-api.hh>
#include <nix/store/filetransfer.hh>
#include <nix/store/globals.hh>
#include <nix/store/local-store.hh>
#include <nix/store/pathlocks.hh>
#include <nix/store/posix-fs-canonicalise.hh>
#include <nix/util/url.hh>
#include <nix/util/logging.hh>
#include <nix/util/signals.hh>
#include <nix/util/config-global.hh>
// emitTreeAttrs moved from libflake's header to libexpr's in 2.35.
#if NIXHF_NIX_MINOR >= 35
#  include <nix/expr/fetch-tree.hh>
#else
#  include <nix/flake/flake.hh>
#endif
// 2.36 moved building and substituting out of Store, into a Builder.
#if NIXHF_NIX_MINOR >= 36
#  include <nix/store/build.hh>
#endif

namespace nixhf::compat {

// A fetcher attribute's value. 2.35 added lazily computed attributes,
// which must be forced before they can be read.
#if NIXHF_NIX_MINOR >= 35
using ResolvedAttr = nix::fetchers::ResolvedAttr;

inline ResolvedAttr resolved(const nix::fetchers::Attr & attr)
{
    return nix::fetchers::forceAttr(attr);
}
#else
using ResolvedAttr = nix::fetchers::Attr;

inline const ResolvedAttr & resolved(const nix::fetchers::Attr & attr)
{
    return attr;
}
#endif

// A wrapping accessor to subclass. 2.35 gives every SourceAccessor a private
// pure `anchor()` (a vtable anchor) that each concrete class must define.
#if NIXHF_NIX_MINOR >= 35
struct FilteringSourceAccessor : nix::FilteringSourceAccessor
{
    using nix::FilteringSourceAccessor::FilteringSourceAccessor;

private:
    void anchor() override { }
};
#else
using FilteringSourceAccessor = nix::FilteringSourceAccessor;
#endif

// The input scheme's overrides, in one form for every Nix: the scheme
// implements the pure functions below, and this class the virtual functions
// each Nix declares. 2.36 drops the Settings from inputFromURL and
// inputFromAttrs; Determinate Nix adds `abbreviate` to toURL and a
// `fastOnly` getAccessor, which it tries first (swallowing what it throws)
// before substituting and then fetching.
struct InputScheme : nix::fetchers::InputScheme
{
    virtual std::optional<nix::fetchers::Input> fromURL(const nix::ParsedURL & url) const = 0;
    virtual std::optional<nix::fetchers::Input> fromAttrs(const nix::fetchers::Attrs & attrs) const = 0;
    virtual nix::ParsedURL urlOf(const nix::fetchers::Input & input) const = 0;
    // With `fastOnly`, only what is at hand without the network; nullopt
    // when that is nothing.
    virtual std::optional<std::pair<nix::ref<nix::SourceAccessor>, nix::fetchers::Input>> accessorOf(
        const nix::fetchers::Settings & settings, nix::Store & store, const nix::fetchers::Input & input,
        bool fastOnly) const = 0;

#if NIXHF_NIX_MINOR >= 36
    std::optional<nix::fetchers::Input> inputFromURL(const nix::ParsedURL & url, bool requireTree) const override
    {
        return fromURL(url);
    }

    std::optional<nix::fetchers::Input> inputFromAttrs(const nix::fetchers::Attrs & attrs) const override
    {
        return fromAttrs(attrs);
    }
#else
    std::optional<nix::fetchers::Input>
    inputFromURL(const nix::fetchers::Settings & settings, const nix::ParsedURL & url, bool requireTree) const override
    {
        return fromURL(url);
    }

    std::optional<nix::fetchers::Input>
    inputFromAttrs(const nix::fetchers::Settings & settings, const nix::fetchers::Attrs & attrs) const override
    {
        return fromAttrs(attrs);
    }
#endif

#if NIXHF_DETERMINATE
    nix::ParsedURL toURL(const nix::fetchers::Input & input, bool abbreviate) const override
    {
        return urlOf(input);
    }

    using nix::fetchers::InputScheme::getAccessor;

    std::optional<std::pair<nix::ref<nix::SourceAccessor>, nix::fetchers::Input>> getAccessor(
        const nix::fetchers::Settings & settings, nix::Store & store, const nix::fetchers::Input & input,
        bool fastOnly) const override
    {
        return accessorOf(settings, store, input, fastOnly);
    }
#else
    nix::ParsedURL toURL(const nix::fetchers::Input & input) const override
    {
        return urlOf(input);
    }

    std::pair<nix::ref<nix::SourceAccessor>, nix::fetchers::Input>
    getAccessor(const nix::fetchers::Settings & settings, nix::Store & store, const nix::fetchers::Input & input) const override
    {
        return accessorOf(settings, store, input, false).value();
    }
#endif
};

// An input from a URL or attributes. 2.36 no longer takes the settings.
inline nix::fetchers::Input inputFromURL(const nix::fetchers::Settings & settings, const std::string & url)
{
#if NIXHF_NIX_MINOR >= 36
    return nix::fetchers::Input::fromURL(url);
#else
    return nix::fetchers::Input::fromURL(settings, url);
#endif
}

inline nix::fetchers::Input inputFromAttrs(const nix::fetchers::Settings & settings, nix::fetchers::Attrs && attrs)
{
#if NIXHF_NIX_MINOR >= 36
    return nix::fetchers::Input::fromAttrs(std::move(attrs));
#else
    return nix::fetchers::Input::fromAttrs(settings, std::move(attrs));
#endif
}

// What Nix's caches key an input's tree by: its fingerprint, which 2.36
// prefixes with the scheme's name.
inline std::string cacheFingerprint(std::string_view scheme, const std::string & fingerprint)
{
#if NIXHF_NIX_MINOR >= 36
    return std::string(scheme) + ":" + fingerprint;
#else
    return fingerprint;
#endif
}

// A primop's signature. 2.36 passes a CallSite for the position, and the
// arguments as `Value * const *`.
#if NIXHF_NIX_MINOR >= 36
using CallSite = nix::CallSite;
using PrimOpArgs = nix::Value * const *;

inline nix::PosIdx callPos(CallSite site)
{
    return site.pos;
}
#else
using CallSite = nix::PosIdx;
using PrimOpArgs = nix::Value **;

inline nix::PosIdx callPos(CallSite pos)
{
    return pos;
}
#endif

// fetchTree's result attributes. 2.36 adds the call's position.
inline void emitTreeAttrs(
    nix::EvalState & state, nix::PosIdx pos, const nix::StorePath & path, const nix::fetchers::Input & input,
    nix::Value & v)
{
#if NIXHF_NIX_MINOR >= 36
    nix::emitTreeAttrs(state, pos, path, input, v, false, false);
#else
    nix::emitTreeAttrs(state, path, input, v, false, false);
#endif
}

// Mounts a fetched input in the evaluator. Determinate Nix asks whether the
// input must be lockable and whether to compute its narHash (it may not,
// with its lazy trees): we check a narHash when one was given.
inline nix::StorePath mountInput(
    nix::EvalState & state, nix::fetchers::Input & locked, const nix::fetchers::Input & original,
    nix::ref<nix::SourceAccessor> accessor, bool checkNarHash)
{
#if NIXHF_DETERMINATE
    return state.mountInput(locked, original, accessor, true, checkNarHash);
#else
    return state.mountInput(locked, original, accessor);
#endif
}

// Makes `path` valid in the store, substituting it if it can. 2.36 moved
// this to the store's Builder.
inline void ensurePath(nix::Store & store, const nix::StorePath & path)
{
#if NIXHF_NIX_MINOR >= 36
    store.getBuilder()->ensurePath(path);
#else
    store.ensurePath(path);
#endif
}

// The file transfer activity a fetch reports its progress on. 2.36 passes
// an activity's fields as a span.
inline nix::Activity fileTransferActivity(const std::string & what)
{
    auto text = nix::fmt("fetching '%s'", what);
#if NIXHF_NIX_MINOR >= 36
    return nix::Activity(*nix::logger, nix::lvlInfo, nix::actFileTransfer, text,
        std::to_array<nix::Logger::Field>({what}), nix::getCurActivity());
#else
    return nix::Activity(*nix::logger, nix::lvlInfo, nix::actFileTransfer, text, nix::Logger::Fields{what},
        nix::getCurActivity());
#endif
}

// Whether a string's context element is a store path that already exists
// (not a derivation's output). Determinate Nix adds Path, a store path
// coerced without being copied.
inline bool isExistingPath(const nix::NixStringContextElem & elem)
{
#if NIXHF_DETERMINATE
    return std::holds_alternative<nix::NixStringContextElem::Opaque>(elem.raw)
        || std::holds_alternative<nix::NixStringContextElem::Path>(elem.raw);
#else
    return std::holds_alternative<nix::NixStringContextElem::Opaque>(elem.raw);
#endif
}

// The real store path behind `path` (of a string with `context`), valid in
// the store. 2.35 mounts inputs lazily and copies one into the store only
// when something needs it there; Determinate Nix may hand out a virtual
// path for a mounted input, devirtualized by copying; 2.34 copies every
// input eagerly.
inline nix::StorePath storedPath(
    nix::EvalState & state, const nix::StorePath & path, [[maybe_unused]] const nix::NixStringContext & context)
{
#if NIXHF_DETERMINATE
    return state.devirtualize(path);
#elif NIXHF_NIX_MINOR >= 35
    state.ensureLazyPathsCopied(context);
    return path;
#else
    return path;
#endif
}

} // namespace nixhf::compat
