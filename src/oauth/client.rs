//! What the endpoints share: the form body (a parameter given twice is refused,
//! RFC 6749 §3.2) and client authentication (HTTP Basic or form fields, never both).

use std::collections::HashMap;

use axum::http::{header, HeaderMap};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use entity::service_account;

use super::error::OAuthError;
use crate::auth::secret::Secret;
use crate::core::Core;
use crate::request::{self, content_type_is};
use crate::service_accounts;

pub(super) type Form = HashMap<String, String>;

/// Parses a form body; a parameter given twice is an error (RFC 6749 §3.2).
pub(super) fn parse_form(headers: &HeaderMap, body: &[u8]) -> Result<Form, OAuthError> {
    let form_type = content_type_is(headers, request::FORM);
    if !form_type {
        return Err(OAuthError::new(
            "invalid_request",
            "send the parameters as application/x-www-form-urlencoded",
        ));
    }
    let mut form = Form::new();
    for (k, v) in form_urlencoded::parse(body) {
        if form.insert(k.to_string(), v.into_owned()).is_some() {
            return Err(OAuthError::new(
                "invalid_request",
                format!("parameter `{k}` is given more than once"),
            ));
        }
    }
    Ok(form)
}

/// The client credentials presented, by HTTP Basic (RFC 6749 §2.3.1, each part
/// form-urlencoded) or by `client_id`/`client_secret` form fields; not both.
pub(super) fn client_credentials(
    headers: &HeaderMap,
    form: &Form,
) -> Result<Option<(String, Secret)>, OAuthError> {
    let basic = match headers.get(header::AUTHORIZATION) {
        Some(v) => {
            let v = v.to_str().unwrap_or("");
            let encoded = match v.split_once(' ') {
                Some((scheme, rest)) if scheme.eq_ignore_ascii_case("basic") => rest.trim(),
                _ => {
                    return Err(OAuthError::new(
                        "invalid_client",
                        "client authentication must use HTTP Basic",
                    ))
                }
            };
            let decoded = STANDARD
                .decode(encoded)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| {
                    OAuthError::new("invalid_client", "the Basic credentials cannot be decoded")
                })?;
            let (id, secret) = decoded.split_once(':').ok_or_else(|| {
                OAuthError::new(
                    "invalid_client",
                    "the Basic credentials need client_id:client_secret",
                )
            })?;
            let unescape = |s: &str| -> String {
                form_urlencoded::parse(format!("x={s}").as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default()
            };
            Some((unescape(id), Secret::new(unescape(secret))))
        }
        None => None,
    };
    let posted = match (form.get("client_id"), form.get("client_secret")) {
        (Some(id), Some(secret)) => Some((id.clone(), Secret::new(secret.clone()))),
        (None, None) => None,
        (Some(_), None) if basic.is_some() => None,
        _ => {
            return Err(OAuthError::new(
                "invalid_request",
                "give both client_id and client_secret",
            ))
        }
    };
    match (basic, posted) {
        (Some(_), Some(_)) => Err(OAuthError::new(
            "invalid_request",
            "use one client authentication method, not two",
        )),
        (b, p) => Ok(b.or(p)),
    }
}

pub(super) async fn authenticate_client(
    core: &Core,
    creds: Option<(String, Secret)>,
    ip: &str,
) -> Result<service_account::Model, OAuthError> {
    let (id, secret) = creds
        .ok_or_else(|| OAuthError::new("invalid_client", "client authentication is required"))?;
    Ok(service_accounts::authenticate_client(core, &id, &secret, ip).await?)
}
