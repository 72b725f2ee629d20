#include "glue.hh"

namespace nixhf {

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

const char * const bookkeeping[2] = {"type", "__final"};

rust::Vec<Attr> describing(const nix::fetchers::Attrs & attrs)
{
    auto copy = attrs;
    for (auto name : bookkeeping)
        copy.erase(name);
    return toRust(copy);
}

nix::fetchers::Attrs fromRust(const rust::Vec<Attr> & attrs)
{
    nix::fetchers::Attrs out;
    for (auto & a : attrs) {
        std::string name(a.name);
        if (a.kind == AttrKind::Int)
            out.insert_or_assign(name, uint64_t(a.int_value));
        else if (a.kind == AttrKind::Bool)
            out.insert_or_assign(name, nix::Explicit<bool>{a.bool_value});
        else
            out.insert_or_assign(name, std::string(a.str_value));
    }
    return out;
}

} // namespace nixhf
