#pragma once
// What the Rust core may call back into: an abstract interface with no Nix
// types, so the bridge compiles without Nix headers. cpp/fetch.cc implements
// it on top of Nix's logger and interrupt handling.
//
// The core calls interrupted(), progress(), file_started() and note(), and none of
// them may throw: an exception would unwind through Rust's frames and
// terminate nix. What an implementation throws is kept instead; from then on
// interrupted() says yes, so the fetch stops, and rethrow() throws it once the
// core has returned.

#include <cstdint>
#include <exception>
#include <string_view>

#include "rust/cxx.h"

namespace nixhf {

class FetchContext
{
public:
    virtual ~FetchContext() = default;

    bool interrupted() const noexcept;
    void progress(uint64_t done, uint64_t expected) const noexcept;
    void file_started(rust::Str path, uint64_t size) const noexcept;
    void note(rust::Str message) const noexcept;

    // Throws what a callback threw, if one did.
    void rethrow() const;

protected:
    // True once the user pressed Ctrl-C.
    virtual bool checkInterrupted() const = 0;
    virtual void showProgress(uint64_t done, uint64_t expected) const = 0;
    // A file download begins.
    virtual void showFile(std::string_view path, uint64_t size) const = 0;
    // How the fetch goes about it.
    virtual void showNote(std::string_view message) const = 0;

private:
    // Keeps the first exception `f` throws.
    template<typename F>
    void guarded(F && f) const noexcept;

    mutable std::exception_ptr thrown;
};

} // namespace nixhf
