//! JDBC connection URLs (`jdbc:postgresql://`, `jdbc:mysql://`, `jdbc:mariadb://`, `jdbc:sqlite:`)
//! parsed into what the drivers need. Owns URL parsing and the redaction of secrets in URLs; it
//! opens no connections.

use std::collections::BTreeMap;

use super::dialect::Dialect;

/// A parsed JDBC URL.
#[derive(Clone, Debug, PartialEq)]
pub struct JdbcUrl {
    pub dialect: Dialect,
    /// Host and port for the network databases.
    pub host: String,
    pub port: u16,
    /// The database (PostgreSQL, MySQL) or the file path (SQLite; `:memory:` allowed).
    pub database: String,
    /// `?key=value&...` (PostgreSQL, MySQL) or `;key=value` parameters; `user` and `password` are
    /// taken from here when the connector config does not set them.
    pub params: BTreeMap<String, String>,
}

/// Why a URL cannot be used; the message quotes the URL with its password removed.
#[derive(Debug, thiserror::Error)]
#[error("Invalid value {url} for configuration connection.url: {reason}")]
pub struct UrlError {
    pub url: String,
    pub reason: String,
}

impl JdbcUrl {
    pub fn parse(url: &str) -> Result<JdbcUrl, UrlError> {
        let err = |reason: &str| UrlError {
            url: redact(url),
            reason: reason.to_string(),
        };
        let rest = url.trim().strip_prefix("jdbc:").ok_or_else(|| {
            err("a JDBC URL starts with jdbc: (e.g. jdbc:postgresql://host:5432/db)")
        })?;
        let (proto, after) = match rest.find(':') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, ""),
        };
        // `jdbc:mariadb//host/db` (a colon forgotten, as in copied tutorials) is read as meant.
        let (proto, after) = match proto.find("//") {
            Some(i) if after.is_empty() || proto[i..].len() > 2 => (&proto[..i], &rest[i..]),
            _ => (proto, after),
        };
        let dialect = match proto.to_ascii_lowercase().as_str() {
            "postgresql" | "postgres" => Dialect::Postgres,
            "mysql" | "mariadb" => Dialect::MySql,
            "sqlite" => Dialect::Sqlite,
            other => {
                return Err(err(&format!(
                    "unsupported JDBC subprotocol '{other}' (strom supports postgresql, mysql, mariadb and sqlite)"
                )));
            }
        };
        if dialect == Dialect::Sqlite {
            let (path, params) = split_params(after);
            if path.is_empty() {
                return Err(err("jdbc:sqlite: needs a file path (or :memory:)"));
            }
            return Ok(JdbcUrl {
                dialect,
                host: String::new(),
                port: 0,
                database: path.to_string(),
                params,
            });
        }
        let after = after.strip_prefix("//").ok_or_else(|| {
            err("expected // after the subprotocol (jdbc:<db>://host:port/database)")
        })?;
        let (hostport_db, params) = split_params(after);
        let (hostport, database) = match hostport_db.find('/') {
            Some(i) => (&hostport_db[..i], &hostport_db[i + 1..]),
            None => (hostport_db, ""),
        };
        // `user:password@host` is accepted by the MariaDB driver; keep it working.
        let (userinfo, hostport) = match hostport.rfind('@') {
            Some(i) => (Some(&hostport[..i]), &hostport[i + 1..]),
            None => (None, hostport),
        };
        // Several hosts (failover lists) are not supported: take the first.
        let hostport = hostport.split(',').next().unwrap_or("");
        let default_port = if dialect == Dialect::Postgres {
            5432
        } else {
            3306
        };
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => {
                let port = p
                    .parse::<u16>()
                    .map_err(|_| err(&format!("'{p}' is not a port number")))?;
                (h, port)
            }
            _ => (hostport, default_port),
        };
        let host = if host.is_empty() { "localhost" } else { host };
        let mut params = params;
        if let Some(ui) = userinfo {
            let (u, p) = ui.split_once(':').unwrap_or((ui, ""));
            params.entry("user".into()).or_insert_with(|| u.to_string());
            if !p.is_empty() {
                params
                    .entry("password".into())
                    .or_insert_with(|| p.to_string());
            }
        }
        Ok(JdbcUrl {
            dialect,
            host: host.trim_matches(|c| c == '[' || c == ']').to_string(),
            port,
            database: database.to_string(),
            params,
        })
    }
}

/// Splits `path?k=v&k2=v2` (or `path;k=v`) into the path and its parameters.
fn split_params(s: &str) -> (&str, BTreeMap<String, String>) {
    let cut = s.find(['?', ';']).unwrap_or(s.len());
    let mut params = BTreeMap::new();
    for kv in s[cut..].trim_start_matches(['?', ';']).split(['&', ';']) {
        if let Some((k, v)) = kv.split_once('=') {
            params.insert(k.trim().to_string(), v.trim().to_string());
        }
    }
    (&s[..cut], params)
}

/// The URL with any password (`password=...`, `user:password@`) replaced by `****`, for messages.
pub fn redact(url: &str) -> String {
    let mut out = String::with_capacity(url.len());
    // user:password@host
    let redacted_userinfo = match (url.find("//"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let ui = &url[s + 2..at];
            match ui.split_once(':') {
                Some((u, _)) => format!("{}{u}:****{}", &url[..s + 2], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    };
    let mut rest = redacted_userinfo.as_str();
    while let Some(i) = rest.to_ascii_lowercase().find("password=") {
        out.push_str(&rest[..i + "password=".len()]);
        out.push_str("****");
        rest = &rest[i + "password=".len()..];
        let end = rest.find(['&', ';']).unwrap_or(rest.len());
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_urls_users_write() {
        let u = JdbcUrl::parse("jdbc:mariadb://localhost:3306/mydb").unwrap();
        assert_eq!(
            (u.dialect, u.host.as_str(), u.port, u.database.as_str()),
            (Dialect::MySql, "localhost", 3306, "mydb")
        );
        // The seed's sink URL lacks a colon; it still means MariaDB on localhost.
        let u = JdbcUrl::parse("jdbc:mariadb//localhost:3306/mydb").unwrap();
        assert_eq!(
            (u.dialect, u.port, u.database.as_str()),
            (Dialect::MySql, 3306, "mydb")
        );
        let u =
            JdbcUrl::parse("jdbc:postgresql://db.example:6543/app?user=a&password=s3cret").unwrap();
        assert_eq!((u.dialect, u.port), (Dialect::Postgres, 6543));
        assert_eq!(u.params.get("password").map(String::as_str), Some("s3cret"));
        let u = JdbcUrl::parse("jdbc:postgresql://localhost/app").unwrap();
        assert_eq!(u.port, 5432);
        let u = JdbcUrl::parse("jdbc:sqlite:/tmp/x.db").unwrap();
        assert_eq!(
            (u.dialect, u.database.as_str()),
            (Dialect::Sqlite, "/tmp/x.db")
        );
        let e = JdbcUrl::parse("jdbc:oracle:thin:@h:1521:x")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unsupported JDBC subprotocol 'oracle'"), "{e}");
        let e = JdbcUrl::parse("postgresql://h/db").unwrap_err().to_string();
        assert!(e.contains("connection.url"), "{e}");
    }

    #[test]
    fn passwords_never_appear_in_messages() {
        assert_eq!(
            redact("jdbc:postgresql://h/db?user=a&password=s3cret&ssl=true"),
            "jdbc:postgresql://h/db?user=a&password=****&ssl=true"
        );
        assert_eq!(
            redact("jdbc:mysql://root:pw@h/db"),
            "jdbc:mysql://root:****@h/db"
        );
        let e = JdbcUrl::parse("jdbc:nope://h/db?password=s3cret")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("s3cret"), "{e}");
    }
}
