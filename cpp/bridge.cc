// FetchContext's callbacks as the Rust core sees them: they never throw.
// Compiled with the bridge (build.rs), without Nix headers.

#include "bridge.hh"

namespace nixhf {

template<typename F>
void FetchContext::guarded(F && f) const noexcept
{
    try {
        f();
    } catch (...) {
        if (!thrown)
            thrown = std::current_exception();
    }
}

bool FetchContext::interrupted() const noexcept
{
    bool stop = true;
    guarded([&] { stop = checkInterrupted(); });
    return stop || thrown;
}

void FetchContext::progress(uint64_t done, uint64_t expected) const noexcept
{
    guarded([&] { showProgress(done, expected); });
}

void FetchContext::file_started(rust::Str path, uint64_t size) const noexcept
{
    guarded([&] { showFile(std::string_view(path.data(), path.size()), size); });
}

void FetchContext::note(rust::Str message) const noexcept
{
    guarded([&] { showNote(std::string_view(message.data(), message.size())); });
}

void FetchContext::rethrow() const
{
    if (thrown)
        std::rethrow_exception(thrown);
}

} // namespace nixhf
