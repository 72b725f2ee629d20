//! Finding the user's Hub token where users already keep it. The value never
//! appears in Debug output or messages: only where it came from does.

use std::fmt;
use std::path::PathBuf;

#[derive(Clone)]
pub struct Token {
    value: String,
    /// Where it was found, for messages ("HF_TOKEN", "access-tokens", a path).
    pub source: String,
}

impl Token {
    pub fn new(value: &str, source: &str) -> Option<Token> {
        let value = value.trim();
        (!value.is_empty()).then(|| Token { value: value.to_string(), source: source.to_string() })
    }

    pub fn bearer(&self) -> String {
        format!("Bearer {}", self.value)
    }

    #[cfg(test)]
    pub fn value(&self) -> &str {
        &self.value
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Token(from {})", self.source)
    }
}

/// The token for the endpoint `host` (with `:port` when not the default):
/// Nix's `access-tokens` entry for it first, since that is Nix's own way;
/// then the official client's order: `HF_TOKEN`, `HUGGING_FACE_HUB_TOKEN`,
/// the file at `HF_TOKEN_PATH`, `$HF_HOME/token`, and
/// `$XDG_CACHE_HOME/huggingface/token` or `~/.cache/huggingface/token`.
/// `HF_HUB_DISABLE_IMPLICIT_TOKEN` turns off all but access-tokens.
pub fn find(host: &str, access_tokens: &[(String, String)], env: &dyn Fn(&str) -> Option<String>) -> Option<Token> {
    let bare_host = host.rsplit_once(':').map_or(host, |(h, _)| h);
    for key in [host, bare_host] {
        if let Some((_, t)) = access_tokens.iter().find(|(h, _)| h == key) {
            if let Some(t) = Token::new(t, &format!("access-tokens entry for {key}")) {
                return Some(t);
            }
        }
    }
    if env("HF_HUB_DISABLE_IMPLICIT_TOKEN").is_some_and(|v| !v.is_empty() && v != "0" && v.to_lowercase() != "false") {
        return None;
    }
    for var in ["HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"] {
        if let Some(t) = env(var).and_then(|v| Token::new(&v, var)) {
            return Some(t);
        }
    }
    let mut files = Vec::new();
    if let Some(p) = env("HF_TOKEN_PATH") {
        files.push(PathBuf::from(p));
    }
    let hf_home = env("HF_HOME").map(PathBuf::from).or_else(|| {
        env("XDG_CACHE_HOME")
            .map(|c| PathBuf::from(c).join("huggingface"))
            .or_else(|| env("HOME").map(|h| PathBuf::from(h).join(".cache/huggingface")))
    });
    if let Some(h) = hf_home {
        files.push(h.join("token"));
    }
    for f in files {
        if let Ok(s) = std::fs::read_to_string(&f) {
            if let Some(t) = Token::new(&s, &f.display().to_string()) {
                return Some(t);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn with(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn order_follows_nix_then_the_official_client() {
        let dir = std::env::temp_dir().join(format!("nixhf-token-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("hf")).unwrap();
        std::fs::write(dir.join("hf/token"), "hf_fromfile\n").unwrap();
        let home = dir.join("hf").display().to_string();
        let tokens = vec![("hub.example:8080".to_string(), "hf_nix".to_string())];
        let env = with(&[("HF_TOKEN", "hf_env"), ("HF_HOME", &home)]);
        assert_eq!(find("hub.example:8080", &tokens, &env).unwrap().value(), "hf_nix");
        assert_eq!(find("other.example", &tokens, &env).unwrap().value(), "hf_env");
        let env = with(&[("HUGGING_FACE_HUB_TOKEN", "hf_old"), ("HF_HOME", &home)]);
        assert_eq!(find("h", &[], &env).unwrap().value(), "hf_old");
        let env = with(&[("HF_HOME", &home)]);
        let t = find("h", &[], &env).unwrap();
        assert_eq!(t.value(), "hf_fromfile");
        assert!(!format!("{t:?}").contains("hf_fromfile"), "Debug must not show the token");
        let env = with(&[("HF_HOME", &home), ("HF_HUB_DISABLE_IMPLICIT_TOKEN", "1"), ("HF_TOKEN", "x")]);
        assert!(find("h", &[], &env).is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
