#include "glue.hh"

namespace nixhf {

namespace {

const char * const bookkeeping[] = {"type", "__final"};

rust::Vec<Attr> toRust(const nix::fetchers::Attrs & attrs)
{
    rust::Vec<Attr> out;
    for (auto & [name, value] : attrs) {
        Attr a{name, AttrKind::Str, "", 0, false};
        std::visit(nix::overloaded{
            [&](const std::string & s) { a.str_value = s; },
            [&](const uint64_t & n) { a.kind = AttrKind::Int; a.int_value = n; },
            [&](const nix::Explicit<bool> & b) { a.kind = AttrKind::Bool; a.bool_value = b.t; },
        }, compat::resolved(value));
        out.push_back(std::move(a));
    }
    return out;
}

} // namespace

rust::Vec<Attr> describing(const nix::fetchers::Attrs & attrs)
{
    auto copy = attrs;
    for (auto name : bookkeeping)
        copy.erase(name);
    return toRust(copy);
}

nix::fetchers::Attrs fromRust(const rust::Vec<Attr> & canonical, const nix::fetchers::Attrs & original)
{
    nix::fetchers::Attrs out;
    for (auto & a : canonical) {
        std::string name(a.name);
        if (a.kind == AttrKind::Int)
            out.insert_or_assign(name, uint64_t(a.int_value));
        else if (a.kind == AttrKind::Bool)
            out.insert_or_assign(name, nix::Explicit<bool>{a.bool_value});
        else
            out.insert_or_assign(name, std::string(a.str_value));
    }
    for (auto name : bookkeeping)
        if (auto i = original.find(name); i != original.end())
            out.insert_or_assign(name, i->second);
    return out;
}

void throwFailure(const Failure & failure)
{
    auto message = std::string(failure.message);
    switch (failure.kind) {
    case ErrorKind::Interrupted:
        nix::checkInterrupt();
        throw nix::Interrupted("interrupted by the user");
    case ErrorKind::InvalidInput:
        // What Nix's own fetchers throw for an input they cannot use.
        throw nix::BadURL("%s", nix::Uncolored(message));
    case ErrorKind::CorruptData:
        // Bytes or answers that are not what the Hub promised: Nix's exit
        // status for a hash mismatch.
        throw nix::Error((unsigned int) 102, "%s", nix::Uncolored(message));
    default:
        throw nix::Error("%s", nix::Uncolored(message));
    }
}

} // namespace nixhf
