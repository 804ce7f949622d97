//! Listener addresses as the options take them: an IP address and port, or a host name and port
//! (`localhost:8080`), resolved once when the configuration is read.

use std::net::{SocketAddr, ToSocketAddrs};

use thiserror::Error;

/// Why a text is not an address to listen on. Each message says what would be accepted.
#[derive(Debug, Error)]
pub enum ListenAddrError {
    /// No `:PORT` at the end, or a port that is not a number from 0 to 65535.
    #[error(
        "expected HOST:PORT with a port from 0 to 65535, e.g. 127.0.0.1:8080, [::1]:8080, \
         0.0.0.0:8080 or localhost:8080"
    )]
    Malformed,
    /// The host name did not resolve to any address.
    #[error(
        "the host name {host} does not resolve ({reason}); use an IP address such as 127.0.0.1"
    )]
    Unresolved {
        /// The host name.
        host: String,
        /// What the resolver said.
        reason: String,
    },
}

/// Value parser for `#[arg(value_parser = ...)]` on listener [`SocketAddr`] fields. A host name
/// is resolved now, and its first IPv4 address taken (else its first address), so `localhost`
/// means 127.0.0.1 wherever it also names `::1`.
///
/// ```
/// # use sidecache::listen_addr::parse_listen_addr;
/// assert_eq!(parse_listen_addr("[::1]:80").unwrap().to_string(), "[::1]:80");
/// assert!(parse_listen_addr("localhost").is_err());
/// ```
///
/// # Errors
///
/// The text has no valid port, or its host name does not resolve.
pub fn parse_listen_addr(text: &str) -> Result<SocketAddr, ListenAddrError> {
    let text = text.trim();
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let (host, port) = text.rsplit_once(':').ok_or(ListenAddrError::Malformed)?;
    if host.is_empty() || port.parse::<u16>().is_err() {
        return Err(ListenAddrError::Malformed);
    }
    let unresolved = |reason: String| ListenAddrError::Unresolved {
        host: host.to_owned(),
        reason,
    };
    let resolved: Vec<SocketAddr> = text
        .to_socket_addrs()
        .map_err(|error| unresolved(error.to_string()))?
        .collect();
    resolved
        .iter()
        .find(|addr| addr.is_ipv4())
        .or_else(|| resolved.first())
        .copied()
        .ok_or_else(|| unresolved("no addresses".to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_host_names_are_accepted() {
        let parse = |text| parse_listen_addr(text).expect(text).to_string();
        assert_eq!(parse("127.0.0.1:8080"), "127.0.0.1:8080");
        assert_eq!(parse("[::]:80"), "[::]:80");
        assert_eq!(parse("localhost:8080"), "127.0.0.1:8080");
    }

    #[test]
    fn a_missing_port_or_unknown_host_says_what_would_be_accepted() {
        for text in [
            "localhost",
            "127.0.0.1",
            "localhost:http",
            ":8080",
            "host:70000",
        ] {
            let error = parse_listen_addr(text).expect_err(text);
            assert!(matches!(error, ListenAddrError::Malformed), "{text}");
            assert!(error.to_string().contains("localhost:8080"), "{text}");
        }
        let error = parse_listen_addr("no-such-host.invalid:8080").expect_err("unresolvable");
        assert!(
            error
                .to_string()
                .contains("no-such-host.invalid does not resolve"),
            "{error}"
        );
    }
}
