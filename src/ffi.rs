//! The one seam between the Rust core and the C++ glue. Only plain data
//! crosses it: attributes as tagged values, strings, numbers. Every Rust
//! entry point runs under `guard`, so a panic becomes an error the glue
//! rethrows as a Nix error instead of unwinding into C++.

use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::spec::{self, Spec, SpecError};

#[cxx::bridge(namespace = "nixhf")]
mod bridge {
    enum AttrKind {
        Str,
        Int,
        Bool,
    }

    /// One entry of a Nix `fetchers::Attrs`.
    struct Attr {
        name: String,
        kind: AttrKind,
        str_value: String,
        int_value: u64,
        bool_value: bool,
    }

    /// A URL query parameter, already percent-decoded.
    struct Param {
        name: String,
        value: String,
    }

    struct UrlParts {
        path: String,
        query: Vec<Param>,
    }

    extern "Rust" {
        fn scheme_name() -> &'static str;
        fn allowed_attrs() -> Vec<String>;
        /// `path` and `query` of an `hf:` URL as Nix parsed them; `shown` is
        /// the whole URL for messages. Returns canonical attributes.
        fn input_from_url(path: &str, query: &Vec<Param>, shown: &str) -> Result<Vec<Attr>>;
        /// Checks attributes and returns them in canonical form.
        fn input_from_attrs(attrs: &Vec<Attr>) -> Result<Vec<Attr>>;
        fn input_to_url(attrs: &Vec<Attr>) -> Result<UrlParts>;
        /// Empty when the input has no rev yet.
        fn input_fingerprint(attrs: &Vec<Attr>) -> Result<String>;
        /// Joins a Nix list into the one string an attribute can hold.
        fn encode_list(items: &Vec<String>) -> String;
    }
}

pub use bridge::{Attr, AttrKind, Param, UrlParts};

/// Runs `f`, turning a panic into an error naming it as a bug.
fn guard<T>(f: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(p) => {
            let what = p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            Err(format!(
                "internal error in nix-hf (please report it): {what}"
            ))
        }
    }
}

fn to_spec_attrs(attrs: &[Attr]) -> spec::Attrs {
    attrs
        .iter()
        .map(|a| {
            let v = match a.kind {
                AttrKind::Int => spec::Value::Int(a.int_value),
                AttrKind::Bool => spec::Value::Bool(a.bool_value),
                _ => spec::Value::Str(a.str_value.clone()),
            };
            (a.name.clone(), v)
        })
        .collect()
}

fn from_spec_attrs(attrs: &spec::Attrs) -> Vec<Attr> {
    attrs
        .iter()
        .map(|(name, v)| {
            let mut a = Attr {
                name: name.clone(),
                kind: AttrKind::Str,
                str_value: String::new(),
                int_value: 0,
                bool_value: false,
            };
            match v {
                spec::Value::Str(s) => a.str_value = s.clone(),
                spec::Value::Int(n) => (a.kind, a.int_value) = (AttrKind::Int, *n),
                spec::Value::Bool(b) => (a.kind, a.bool_value) = (AttrKind::Bool, *b),
            }
            a
        })
        .collect()
}

fn parse(attrs: &[Attr]) -> Result<Spec, String> {
    Spec::from_attrs(&to_spec_attrs(attrs)).map_err(|SpecError(e)| e)
}

fn scheme_name() -> &'static str {
    spec::SCHEME
}

fn allowed_attrs() -> Vec<String> {
    spec::ALLOWED_ATTRS.iter().map(|s| s.to_string()).collect()
}

fn input_from_url(path: &str, query: &Vec<Param>, shown: &str) -> Result<Vec<Attr>, String> {
    guard(|| {
        let q: Vec<(String, String)> = query
            .iter()
            .map(|p| (p.name.clone(), p.value.clone()))
            .collect();
        let s = Spec::from_url(path, &q, shown).map_err(|SpecError(e)| e)?;
        Ok(from_spec_attrs(&s.to_attrs()))
    })
}

fn input_from_attrs(attrs: &Vec<Attr>) -> Result<Vec<Attr>, String> {
    guard(|| Ok(from_spec_attrs(&parse(attrs)?.to_attrs())))
}

fn input_to_url(attrs: &Vec<Attr>) -> Result<UrlParts, String> {
    guard(|| {
        let (path, query) = parse(attrs)?.to_url();
        Ok(UrlParts {
            path,
            query: query
                .into_iter()
                .map(|(name, value)| Param { name, value })
                .collect(),
        })
    })
}

fn encode_list(items: &Vec<String>) -> String {
    crate::select::encode_list(items)
}

fn input_fingerprint(attrs: &Vec<Attr>) -> Result<String, String> {
    guard(|| Ok(parse(attrs)?.fingerprint().unwrap_or_default()))
}
