#pragma once
// Shared pieces of the C++ glue: converting attributes across the bridge and
// turning the core's failures into Nix errors.

#include "compat.hh"
#include "rust/cxx.h"
#include "nixhf-bridge.h"

namespace nixhf {

// The attributes that describe an input, for Rust: without Nix's own
// bookkeeping (`type`, `__final`), which Rust neither checks nor keeps.
rust::Vec<Attr> describing(const nix::fetchers::Attrs & attrs);

// The attributes Rust made (`canonical`), with Nix's bookkeeping attributes
// as `original` had them: they pass through the core untouched.
nix::fetchers::Attrs fromRust(const rust::Vec<Attr> & canonical, const nix::fetchers::Attrs & original);

// Throws the Nix error a failure's kind calls for.
[[noreturn]] void throwFailure(const Failure & failure);

// Calls into Rust: `f` gets a Failure to fill; a failure becomes a Nix
// error. Rust never sees a Nix exception and Nix never sees a Rust panic.
template<typename F>
auto callRust(F && f)
{
    Failure failure{false, ErrorKind::Bug, {}};
    if constexpr (std::is_void_v<decltype(f(failure))>) {
        f(failure);
        if (failure.failed)
            throwFailure(failure);
    } else {
        auto result = f(failure);
        if (failure.failed)
            throwFailure(failure);
        return result;
    }
}

void registerInputScheme();

} // namespace nixhf
