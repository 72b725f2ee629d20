#pragma once
// Every difference between the Nix versions nix-hf supports (nix/versions)
// lives here and nowhere else; each branch is compiled and tested in CI.
// The rest of cpp/ includes this header instead of Nix's.
//
// NIXHF_NIX_MAJOR/MINOR come from meson.build (pkg-config --modversion):
// Nix has no version macro. meson refuses a Nix older than the oldest
// supported one; a newer Nix builds with the newest branch.

#if !defined(NIXHF_NIX_MAJOR) || !defined(NIXHF_NIX_MINOR)
#  error "build with meson (meson.build defines NIXHF_NIX_MAJOR and NIXHF_NIX_MINOR from pkg-config)"
#endif

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

// Makes the store paths in `context` valid. 2.35 mounts inputs lazily and
// copies one into the store only when something needs it there; 2.34
// copies every input eagerly.
inline void ensureInStore([[maybe_unused]] nix::EvalState & state, [[maybe_unused]] const nix::NixStringContext & context)
{
#if NIXHF_NIX_MINOR >= 35
    state.ensureLazyPathsCopied(context);
#endif
}

} // namespace nixhf::compat
