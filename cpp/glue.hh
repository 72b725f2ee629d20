#pragma once
// Shared pieces of the C++ glue: converting attributes across the bridge and
// turning errors from Rust into Nix errors.

#include "compat.hh"
#include "rust/cxx.h"
#include "nixhf-bridge.h"

namespace nixhf {

rust::Vec<Attr> toRust(const nix::fetchers::Attrs & attrs);
nix::fetchers::Attrs fromRust(const rust::Vec<Attr> & attrs);

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
