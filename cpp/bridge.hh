#pragma once
// What the Rust core may call back into: an abstract interface with no Nix
// types, so the bridge compiles without Nix headers. cpp/fetch.cc implements
// it on top of Nix's logger and interrupt handling.

#include <cstdint>
#include "rust/cxx.h"

namespace nixhf {

class FetchContext
{
public:
    virtual ~FetchContext() = default;
    // True once the user pressed Ctrl-C.
    virtual bool interrupted() const = 0;
    virtual void progress(uint64_t done, uint64_t expected) const = 0;
    virtual void file_started(rust::Str path, uint64_t size) const = 0;
};

} // namespace nixhf
