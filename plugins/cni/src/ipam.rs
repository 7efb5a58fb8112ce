//! What IPAM plugins share (host-local and static): routes as a config
//! writes them, and the DNS settings of a resolv.conf.

use crate::ip;
use crate::{Dns, Error, Result, Route};
use serde::Deserialize;

/// A route as written in a config (`routes` of host-local and static).
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct RouteConf {
    #[serde(default)]
    pub dst: String,
    #[serde(default)]
    pub gw: Option<String>,
    #[serde(default)]
    pub mtu: Option<u32>,
    #[serde(default)]
    pub advmss: Option<u32>,
    #[serde(default)]
    pub priority: Option<u32>,
    #[serde(default)]
    pub table: Option<u32>,
    #[serde(default)]
    pub scope: Option<u8>,
}

impl RouteConf {
    /// Validate into a result route; `key` names it in messages (`ipam.routes[0]`).
    pub fn to_route(&self, key: &str) -> Result<Route> {
        let dst =
            ip::parse_cidr(&self.dst).map_err(|e| Error::config(format!("{key}.dst: {e}")))?;
        let gw = match self.gw.as_deref().filter(|g| !g.is_empty()) {
            Some(g) => Some(ip::parse_ip(g).map_err(|e| Error::config(format!("{key}.gw: {e}")))?),
            None => None,
        };
        let mut r = Route::new(dst, gw);
        r.mtu = self.mtu;
        r.advmss = self.advmss;
        r.priority = self.priority;
        r.table = self.table;
        r.scope = self.scope;
        Ok(r)
    }
}

/// Validate a list of routes.
pub fn routes(list: &[RouteConf], key: &str) -> Result<Vec<Route>> {
    list.iter()
        .enumerate()
        .map(|(i, r)| r.to_route(&format!("{key}[{i}]")))
        .collect()
}

/// The DNS settings of a resolv.conf: `nameserver` (each), `domain` (the
/// last wins), `search` (the last line wins), `options` (all accumulate).
pub fn parse_resolv_conf(text: &str) -> Dns {
    let mut dns = Dns::default();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        let mut f = line.split_whitespace();
        match (f.next(), f.next()) {
            (Some("nameserver"), Some(v)) => dns.nameservers.push(v.to_string()),
            (Some("domain"), Some(v)) => dns.domain = Some(v.to_string()),
            (Some("search"), Some(v)) => {
                dns.search = std::iter::once(v).chain(f).map(str::to_string).collect()
            }
            (Some("options"), Some(v)) => dns
                .options
                .extend(std::iter::once(v).chain(f).map(str::to_string)),
            _ => {}
        }
    }
    dns
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf() {
        let d = parse_resolv_conf(
            "# comment\n; other\nnameserver 1.1.1.1\nnameserver fd00::53\ndomain example.com\n\
             search a.example b.example\noptions ndots:5\noptions rotate timeout:1\nbogus line\n",
        );
        assert_eq!(d.nameservers, ["1.1.1.1", "fd00::53"]);
        assert_eq!(d.domain.as_deref(), Some("example.com"));
        assert_eq!(d.search, ["a.example", "b.example"]);
        assert_eq!(d.options, ["ndots:5", "rotate", "timeout:1"]);
        assert!(parse_resolv_conf("").is_empty());
    }

    #[test]
    fn routes_validate() {
        let r = RouteConf {
            dst: "10.0.0.0/8".into(),
            gw: Some("10.1.0.1".into()),
            ..Default::default()
        };
        let route = r.to_route("ipam.routes[0]").unwrap();
        assert_eq!(route.dst.to_string(), "10.0.0.0/8");
        let bad = RouteConf {
            dst: "10.0.0.0".into(),
            ..Default::default()
        };
        let e = bad.to_route("ipam.routes[1]").unwrap_err();
        assert_eq!(e.code, 7);
        assert!(e.msg.starts_with("ipam.routes[1].dst"), "{}", e.msg);
    }
}
