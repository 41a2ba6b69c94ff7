//! Where a webhook may point: absolute http(s) URLs, and not the deployment's
//! own network (server-side request forgery) unless
//! `--allow-private-webhook-targets`. Checked when a webhook is registered
//! and again at every delivery, after DNS, so a name that later resolves to a
//! private address is refused too.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use crate::error::{AppError, AppResult};

/// The longest webhook URL accepted.
pub const MAX_URL_LEN: usize = 2048;

/// Loopback, private, link-local, unique-local, shared (CGNAT), unspecified,
/// broadcast, multicast and documentation addresses, and IPv4 addresses
/// mapped into IPv6.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || o[0] == 0
                || (o[0] == 100 && (o[1] & 0xc0) == 64)
                || (o[0] == 192 && o[1] == 0 && o[2] == 0)
                || (o[0] == 198 && (o[1] & 0xfe) == 18)
                || o[0] >= 240
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_private(IpAddr::V4(v4));
            }
            let s = v6.segments();
            let embedded = |hi: u16, lo: u16| {
                is_private(IpAddr::V4(std::net::Ipv4Addr::new(
                    (hi >> 8) as u8,
                    hi as u8,
                    (lo >> 8) as u8,
                    lo as u8,
                )))
            };
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local
                || (s[0] & 0xffc0) == 0xfe80 // link-local
                || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
                || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
                || (s[0] == 0x2001 && s[1] == 0x0000) // Teredo
                || (s[0] == 0x0064 && s[1] == 0xff9b) // NAT64
                || (s[..6] == [0; 6] && embedded(s[6], s[7])) // IPv4-compatible
                || (s[0] == 0x2002 && embedded(s[1], s[2])) // 6to4
        }
    }
}

/// Checks a webhook URL: absolute http(s), a host, no credentials, at most
/// `MAX_URL_LEN` (2048) bytes, and — unless `allow_private` — no loopback or
/// private host, by literal address, by `localhost`, or (when `resolve`) by
/// what the name resolves to now. Answers the URL as it will be stored.
/// Deliveries check again without resolving: their client's resolver refuses
/// private addresses itself.
pub async fn check_url(url: &str, allow_private: bool, resolve: bool) -> AppResult<String> {
    let bad = |why: &str| AppError::BadInput(format!("url: {why}"));
    let url = url.trim();
    if url.len() > MAX_URL_LEN {
        return Err(bad(&format!("longer than {MAX_URL_LEN} bytes")));
    }
    let parsed =
        reqwest::Url::parse(url).map_err(|e| bad(&format!("not an absolute http(s) URL ({e})")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(bad("give an absolute http:// or https:// URL"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(bad(
            "credentials in the URL are not accepted: receivers verify the signature instead",
        ));
    }
    if parsed.fragment().is_some() {
        return Err(bad("a fragment (#…) is never sent: remove it"));
    }
    let Some(host) = parsed.host() else {
        return Err(bad("the URL has no host"));
    };
    if !allow_private {
        let refused = || {
            bad(
                "the target is a loopback, link-local or private address, which webhooks may \
                 not reach (server-side request forgery); a single-host setup can allow it \
                 with --allow-private-webhook-targets",
            )
        };
        match host {
            url::Host::Ipv4(v4) if is_private(IpAddr::V4(v4)) => return Err(refused()),
            url::Host::Ipv6(v6) if is_private(IpAddr::V6(v6)) => return Err(refused()),
            url::Host::Domain(name) => {
                let name = name.trim_end_matches('.').to_ascii_lowercase();
                if name == "localhost" || name.ends_with(".localhost") {
                    return Err(refused());
                }
                if !resolve {
                    return Ok(parsed.to_string());
                }
                let port = parsed.port_or_known_default().unwrap_or(443);
                // A name that resolves now to a private address is refused; one
                // that does not resolve yet is accepted (deliveries check again).
                let lookup = tokio::time::timeout(
                    std::time::Duration::from_secs(2),
                    tokio::net::lookup_host((name.as_str(), port)),
                )
                .await;
                if let Ok(Ok(addrs)) = lookup {
                    if addrs.into_iter().any(|a| is_private(a.ip())) {
                        return Err(refused());
                    }
                }
            }
            _ => {}
        }
    }
    Ok(parsed.to_string())
}

/// The delivery client's resolver: refuses names resolving to a private
/// address unless allowed (a literal address is checked before sending).
pub(super) struct Resolver {
    pub allow_private: bool,
}

impl reqwest::dns::Resolve for Resolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow_private = self.allow_private;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| allow_private || !is_private(a.ip()))
                .collect();
            if addrs.is_empty() {
                return Err(format!(
                    "{host} resolves to no address webhooks may reach (private addresses are refused)"
                )
                .into());
            }
            let addrs: reqwest::dns::Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}

/// The delivery client: no redirects (a redirect could lead anywhere), no
/// proxy from the environment, the configured timeout, the filtering resolver.
pub(super) fn client(allow_private: bool, timeout: std::time::Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(timeout)
        .connect_timeout(timeout)
        .user_agent(concat!("tokengate-webhooks/", env!("CARGO_PKG_VERSION")))
        .dns_resolver(Arc::new(Resolver { allow_private }))
        .build()
        .expect("the webhook client's settings are valid")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_ranges() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::",
        ] {
            assert!(is_private(ip.parse().unwrap()), "{ip} is private");
        }
        for ip in [
            "93.184.216.34",
            "8.8.8.8",
            "2606:4700::1111",
            "172.32.0.1",
            "2002:5db8:d822::1",
        ] {
            assert!(!is_private(ip.parse().unwrap()), "{ip} is public");
        }
    }
}
