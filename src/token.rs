//! Finding the user's Hub token where users already keep it. The value never
//! appears in Debug output or messages: only where it came from does.

use std::fmt;
use std::path::PathBuf;

use url::Url;

use crate::base::{env_on, DEFAULT_ENDPOINT};
use crate::cache;

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

    /// As git sends it: the password of Basic auth (the user name is not
    /// the Hub's concern).
    pub fn basic(&self) -> String {
        use base64::Engine as _;
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("hf:{}", self.value)))
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

/// Which token a fetch sends to its endpoint, or why it sends none.
#[derive(Debug, Default)]
pub struct Choice {
    pub token: Option<Token>,
    /// Why a token the user has is not sent (this endpoint may not have it,
    /// or its file cannot be read), and what to do: said when the Hub then
    /// refuses.
    pub withheld: Option<String>,
}

/// `host` or `host:port` of an endpoint, as access-tokens entries name it.
pub fn host_key(endpoint: &Url) -> String {
    let host = endpoint.host_str().unwrap_or_default();
    match endpoint.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_string(),
    }
}

/// The token for requests to `endpoint`. First Nix's `access-tokens` entry
/// for its host (`host:port` when not the default port, else `host`): an
/// entry names where it may go. Then the file named by the hf-token-file
/// setting (`token_file`), read now, by the process that evaluates; then the
/// tokens the official client finds (`HF_TOKEN`, `HUGGING_FACE_HUB_TOKEN`,
/// the file at `HF_TOKEN_PATH`, `$HF_HOME/token`,
/// `$XDG_CACHE_HOME/huggingface/token` or `~/.cache/huggingface/token`),
/// unless `HF_HUB_DISABLE_IMPLICIT_TOKEN`. Those name no host, so they are
/// sent only to the Hub the user's own environment names (`HF_ENDPOINT`) or
/// to huggingface.co: an endpoint set in Nix's configuration, which a
/// flake's nixConfig can set, gets none of them.
pub fn choose(
    endpoint: &Url,
    access_tokens: Option<&[(String, String)]>,
    token_file: Option<&str>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Choice {
    let host = host_key(endpoint);
    let bare_host = endpoint.host_str().unwrap_or_default();
    for key in [host.as_str(), bare_host] {
        if let Some((_, t)) = access_tokens.unwrap_or_default().iter().find(|(h, _)| h == key) {
            if let Some(t) = Token::new(t, &format!("access-tokens entry for {key}")) {
                return Choice { token: Some(t), withheld: None };
            }
        }
    }
    let from_file = match token_file.filter(|f| !f.is_empty()).map(|f| (f, std::fs::read_to_string(f))) {
        None => None,
        Some((f, Ok(s))) => Token::new(&s, &format!("{f} (hf-token-file)")),
        Some((f, Err(e))) => {
            let user = env("USER").unwrap_or_else(|| "this user".into());
            let why = format!(
                "the token file {f} (hf-token-file) cannot be read by {user}: {e}; it is read by the process that \
                 evaluates, so let every user who fetches hf: inputs read it"
            );
            return Choice { token: implicit_token(env).filter(|_| trusted(endpoint, env)), withheld: Some(why) };
        }
    };
    let Some(token) = from_file.or_else(|| implicit_token(env)) else { return Choice::default() };
    if trusted(endpoint, env) {
        return Choice { token: Some(token), withheld: None };
    }
    let shown = endpoint.as_str().trim_end_matches('/');
    // The plugin has Nix's access-tokens to send one on purpose; the
    // program (no nix.conf) has the user's own HF_ENDPOINT.
    let remedy = match access_tokens {
        Some(_) => format!("add 'access-tokens = {host}=hf_…' to nix.conf"),
        None => format!("set HF_ENDPOINT={shown}"),
    };
    Choice {
        token: None,
        withheld: Some(format!(
            "the token from {} was not sent to {shown}, since tokens that name no host go only to huggingface.co \
             and to the Hub HF_ENDPOINT names; to use a token there, {remedy}",
            token.source
        )),
    }
}

/// Whether tokens that name no host may go to `endpoint`.
fn trusted(endpoint: &Url, env: &dyn Fn(&str) -> Option<String>) -> bool {
    [env("HF_ENDPOINT").filter(|e| !e.is_empty()), Some(DEFAULT_ENDPOINT.to_string())]
        .into_iter()
        .flatten()
        .filter_map(|e| Url::parse(e.trim_end_matches('/')).ok())
        .any(|u| u.origin() == endpoint.origin())
}

/// The token the official client would find, if the user did not turn
/// implicit tokens off.
fn implicit_token(env: &dyn Fn(&str) -> Option<String>) -> Option<Token> {
    if env_on(env("HF_HUB_DISABLE_IMPLICIT_TOKEN").as_deref()) {
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
    if let Some(h) = cache::hf_home(env) {
        files.push(h.join("token"));
    }
    files.into_iter().find_map(|f| {
        let s = std::fs::read_to_string(&f).ok()?;
        Token::new(&s, &f.display().to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn with(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k| m.get(k).cloned()
    }

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn order_follows_nix_then_the_official_client() {
        let dir = std::env::temp_dir().join(format!("nixhf-token-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("hf")).unwrap();
        std::fs::write(dir.join("hf/token"), "hf_fromfile\n").unwrap();
        let home = dir.join("hf").display().to_string();
        let hub = url("https://huggingface.co");
        let tokens = vec![("huggingface.co".to_string(), "hf_nix".to_string())];
        let env = with(&[("HF_TOKEN", "hf_env"), ("HF_HOME", &home)]);
        assert_eq!(choose(&hub, Some(&tokens), None, &env).token.unwrap().value(), "hf_nix");
        assert_eq!(choose(&hub, Some(&[]), None, &env).token.unwrap().value(), "hf_env");
        let env = with(&[("HUGGING_FACE_HUB_TOKEN", "hf_old"), ("HF_HOME", &home)]);
        assert_eq!(choose(&hub, Some(&[]), None, &env).token.unwrap().value(), "hf_old");
        let env = with(&[("HF_HOME", &home)]);
        let t = choose(&hub, Some(&[]), None, &env).token.unwrap();
        assert_eq!(t.value(), "hf_fromfile");
        assert!(!format!("{t:?}").contains("hf_fromfile"), "Debug must not show the token");
        let env = with(&[("HF_HOME", &home), ("HF_HUB_DISABLE_IMPLICIT_TOKEN", "1"), ("HF_TOKEN", "x")]);
        assert!(choose(&hub, Some(&[]), None, &env).token.is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn implicit_tokens_go_only_to_huggingface_co_and_hf_endpoint() {
        let mirror = url("http://127.0.0.1:8080");
        let env = with(&[("HF_TOKEN", "hf_env"), ("HF_ENDPOINT", "http://127.0.0.1:8080/")]);
        assert_eq!(
            choose(&mirror, Some(&[]), None, &env).token.unwrap().value(),
            "hf_env",
            "the user's own HF_ENDPOINT"
        );
        let other = url("https://evil.example");
        let c = choose(&other, Some(&[]), None, &env);
        assert!(c.token.is_none(), "an endpoint the environment does not name gets no implicit token");
        let note = c.withheld.unwrap();
        assert!(note.contains("from HF_TOKEN was not sent to https://evil.example") && !note.contains("hf_env"));
        assert!(note.contains("tokens that name no host go only to huggingface.co"));
        assert!(note.contains("access-tokens = evil.example=hf_…"), "{note}");
        let program = choose(&other, None, None, &env).withheld.unwrap();
        assert!(program.ends_with("to use a token there, set HF_ENDPOINT=https://evil.example"), "{program}");
        let tokens = vec![("evil.example".to_string(), "hf_theirs".to_string())];
        assert_eq!(
            choose(&other, Some(&tokens), None, &env).token.unwrap().value(),
            "hf_theirs",
            "an entry names its host"
        );
        let env = with(&[("HF_TOKEN", "hf_env")]);
        assert!(choose(&url("https://huggingface.co"), None, None, &env).token.is_some());
        assert!(choose(&url("http://huggingface.co"), None, None, &env).token.is_none(), "not over plain http");
        assert!(
            choose(&mirror, Some(&[]), None, &with(&[])).withheld.is_none(),
            "nothing withheld when there is no token"
        );
    }

    #[test]
    fn a_token_file_is_read_when_fetching_and_kept_to_trusted_hubs() {
        let dir = std::env::temp_dir().join(format!("nixhf-tokenfile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("hf-token");
        std::fs::write(&file, "hf_fromsecret\n").unwrap();
        let f = file.to_str().unwrap();
        let hub = url("https://huggingface.co");
        let env = with(&[("HF_TOKEN", "hf_env")]);
        let t = choose(&hub, Some(&[]), Some(f), &env).token.unwrap();
        assert_eq!((t.value(), t.source.as_str()), ("hf_fromsecret", format!("{f} (hf-token-file)").as_str()));
        let tokens = vec![("huggingface.co".to_string(), "hf_nix".to_string())];
        assert_eq!(choose(&hub, Some(&tokens), Some(f), &env).token.unwrap().value(), "hf_nix", "access-tokens first");
        let c = choose(&url("https://evil.example"), Some(&[]), Some(f), &env);
        assert!(
            c.token.is_none() && c.withheld.unwrap().contains("(hf-token-file) was not sent to https://evil.example")
        );
        let missing = dir.join("missing");
        let c = choose(&hub, Some(&[]), Some(missing.to_str().unwrap()), &with(&[("USER", "alice")]));
        assert!(c.token.is_none());
        assert!(c.withheld.unwrap().contains("(hf-token-file) cannot be read by alice"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
