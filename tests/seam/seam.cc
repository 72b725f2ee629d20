// The seam between the glue and the Rust core, without Nix: the core calls a
// FetchContext whose callback throws (as Nix's logger may), and the process
// must not end. The fetch stops instead, and rethrow() gives back what was
// thrown. Run by tests/test_seam.py against the Hub stand-in:
//
//   seam-test ENDPOINT PARTIAL_ROOT REPO (progress|file|interrupted)

#include <cstdio>
#include <stdexcept>
#include <string>

#include "nixhf-bridge.h"

using namespace nixhf;

namespace {

struct Throwing : FetchContext
{
    std::string which;

    explicit Throwing(std::string which)
        : which(std::move(which))
    { }

    void fail(const char * what) const
    {
        if (which == what)
            throw std::runtime_error(std::string("the ") + what + " callback failed");
    }

protected:
    bool checkInterrupted() const override
    {
        fail("interrupted");
        return false;
    }

    void showProgress(uint64_t, uint64_t) const override
    {
        fail("progress");
    }

    void showFile(std::string_view, uint64_t) const override
    {
        fail("file");
    }

    void showNote(std::string_view) const override
    {
        fail("note");
    }
};

} // namespace

int main(int argc, char ** argv)
{
    if (argc != 5) {
        std::fprintf(stderr, "usage: seam-test ENDPOINT PARTIAL_ROOT REPO (progress|file|interrupted)\n");
        return 2;
    }
    FetchRequest req{};
    req.attrs.push_back(Attr{"repo", AttrKind::Str, argv[3], 0, false});
    req.endpoint_setting = argv[1];
    req.partial_root = argv[2];
    req.connections = 4;
    req.stall_timeout = 30;
    req.retries = 2;
    req.retry_time = 60;

    Failure failure{false, ErrorKind::Bug, {}};
    auto fetch = new_fetch(req, failure);
    if (failure.failed) {
        std::printf("refused: %s\n", std::string(failure.message).c_str());
        return 1;
    }
    Throwing ctx(argv[4]);
    fetch->run(ctx, failure);
    if (!failure.failed)
        fetch->wait_tree(ctx, failure);
    try {
        ctx.rethrow();
    } catch (std::runtime_error & e) {
        std::printf("rethrown: %s\n", e.what());
        std::printf("the core: %s\n", failure.failed ? std::string(failure.message).c_str() : "fetched");
        return 0;
    }
    std::printf("nothing was thrown\n");
    return 1;
}
