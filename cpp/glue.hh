#pragma once
// Shared pieces of the C++ glue: converting attributes across the bridge and
// turning errors from Rust into Nix errors.

#include "compat.hh"
#include "rust/cxx.h"
#include "nixhf-bridge.h"

namespace nixhf {

rust::Vec<Attr> toRust(const nix::fetchers::Attrs & attrs);
nix::fetchers::Attrs fromRust(const rust::Vec<Attr> & attrs);

// The attributes that describe an input, for Rust: without Nix's own
// bookkeeping (`type`, `__final`), which Rust neither checks nor keeps.
rust::Vec<Attr> describing(const nix::fetchers::Attrs & attrs);

// Nix's bookkeeping attributes, which pass through the scheme untouched.
extern const char * const bookkeeping[2];

// Calls into Rust; a Rust error (already a complete message) becomes a Nix
// error. Rust never sees a Nix exception and Nix never sees a Rust panic.
template<typename F>
auto callRust(F && f) -> decltype(f())
{
    try {
        return f();
    } catch (rust::Error & e) {
        throw nix::Error("%s", nix::Uncolored(std::string(e.what())));
    }
}

void registerInputScheme();

} // namespace nixhf
