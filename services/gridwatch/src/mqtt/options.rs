//! Turning `GRIDWATCH_MQTT_URL` and friends into rumqttc options.

use std::sync::Once;
use std::time::Duration;

use anyhow::{bail, Context};
use rumqttc::{MqttOptions, TlsConfiguration, Transport};

use crate::config::MqttConfig;

/// Where the broker is and how to log in, parsed from `mqtt[s]://[user[:pass]@]host[:port]`.
#[derive(Clone, PartialEq, Eq)]
pub struct BrokerAddress {
    /// Host name or address.
    pub host: String,
    /// TCP port (1883, or 8883 for TLS, unless given).
    pub port: u16,
    /// Whether to use TLS.
    pub tls: bool,
    /// User name from the URL.
    pub username: Option<String>,
    /// Password from the URL; never logged.
    pub password: Option<String>,
}

impl std::fmt::Debug for BrokerAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}://{}:{}",
            if self.tls { "mqtts" } else { "mqtt" },
            self.host,
            self.port
        )
    }
}

impl BrokerAddress {
    /// Parses a broker URL. Schemes: `mqtt`/`tcp` (plain), `mqtts`/`ssl` (TLS).
    pub fn parse(url: &str) -> anyhow::Result<BrokerAddress> {
        let (scheme, rest) = url
            .split_once("://")
            .context("GRIDWATCH_MQTT_URL must look like mqtt://host:port")?;
        let tls = match scheme {
            "mqtt" | "tcp" => false,
            "mqtts" | "ssl" => true,
            other => bail!("GRIDWATCH_MQTT_URL scheme {other:?} is not mqtt, tcp, mqtts or ssl"),
        };
        let rest = rest.trim_end_matches('/');
        let (userinfo, hostport) = match rest.rsplit_once('@') {
            Some((userinfo, hostport)) => (Some(userinfo), hostport),
            None => (None, rest),
        };
        let (username, password) = match userinfo {
            Some(info) => match info.split_once(':') {
                Some((user, pass)) => (Some(user.to_owned()), Some(pass.to_owned())),
                None => (Some(info.to_owned()), None),
            },
            None => (None, None),
        };
        let default_port = if tls { 8883 } else { 1883 };
        let (host, port) = match hostport.rsplit_once(':') {
            Some((host, port)) if !host.ends_with(']') || hostport.starts_with('[') => {
                let port = port
                    .parse()
                    .with_context(|| format!("GRIDWATCH_MQTT_URL port {port:?} is not a number"))?;
                (host.trim_start_matches('[').trim_end_matches(']'), port)
            }
            _ => (hostport, default_port),
        };
        if host.is_empty() {
            bail!("GRIDWATCH_MQTT_URL names no host");
        }
        Ok(BrokerAddress {
            host: host.to_owned(),
            port,
            tls,
            username,
            password,
        })
    }
}

/// Installs the process's TLS crypto provider once.
fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// Builds the options of a persistent, manually acknowledged session for `client_id`.
pub fn broker_options(config: &MqttConfig, client_id: &str) -> anyhow::Result<MqttOptions> {
    let address = BrokerAddress::parse(config.url.expose())?;
    let mut options = MqttOptions::new(client_id, address.host.clone(), address.port);
    options
        .set_keep_alive(Duration::from_secs(config.keep_alive_secs.max(5)))
        // The broker keeps our subscriptions and queues readings while we are away.
        .set_clean_session(false)
        // Acks leave only after the batch holding the message is committed.
        .set_manual_acks(true)
        .set_max_packet_size(config.max_packet_bytes, config.max_packet_bytes)
        .set_inflight(1000)
        .set_request_channel_capacity(1 << 16);
    let username = config.username.clone().or(address.username.clone());
    let password = config
        .password
        .as_ref()
        .map(|p| p.expose().to_owned())
        .or(address.password.clone());
    if let Some(user) = username {
        options.set_credentials(user, password.unwrap_or_default());
    }
    if address.tls {
        install_crypto_provider();
        let transport = match &config.ca_file {
            Some(path) => {
                let ca = std::fs::read(path)
                    .with_context(|| format!("Failed to read the MQTT CA file {path:?}"))?;
                Transport::tls_with_config(TlsConfiguration::Simple {
                    ca,
                    alpn: None,
                    client_auth: None,
                })
            }
            None => Transport::tls_with_default_config(),
        };
        options.set_transport(transport);
    }
    Ok(options)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_urls_parse() {
        let a = BrokerAddress::parse("mqtt://127.0.0.1:1883").expect("valid");
        assert_eq!((a.host.as_str(), a.port, a.tls), ("127.0.0.1", 1883, false));
        let b = BrokerAddress::parse("mqtts://ingest:s3cret@broker.example").expect("valid");
        assert_eq!(
            (b.host.as_str(), b.port, b.tls),
            ("broker.example", 8883, true)
        );
        assert_eq!(b.username.as_deref(), Some("ingest"));
        assert_eq!(b.password.as_deref(), Some("s3cret"));
        assert!(!format!("{b:?}").contains("s3cret"));
        assert!(BrokerAddress::parse("http://x").is_err());
        assert!(BrokerAddress::parse("mqtt://x:notaport").is_err());
    }
}
