<?php
// Demo application of the jailhost.jails.apache role: lists the rows of one table of the
// database jail. The connection settings come from a JSON file outside the document root
// (readable by root and the web server's group only), named by APP_DB_CONFIG (set in the vhost).
// When the database cannot be reached the page says so with HTTP 503: no stack trace, no
// connection details (display_errors is off; the reason goes to Apache's error log).

declare(strict_types=1);

function h(string $text): string
{
    return htmlspecialchars($text, ENT_QUOTES | ENT_SUBSTITUTE, 'UTF-8');
}

function page(string $title, string $body): void
{
    header('Content-Type: text/html; charset=utf-8');
    header('Cache-Control: no-store');
    echo "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>", h($title),
        "</title>\n</head>\n<body>\n<h1>", h($title), "</h1>\n", $body, "</body>\n</html>\n";
}

function unavailable(string $reason): void
{
    error_log('demo app: ' . $reason);
    http_response_code(503);
    header('Retry-After: 30');
    page('Service unavailable', "<p>The database is not available right now. Please try again in a moment.</p>\n");
    exit;
}

function conninfo_value($value): string
{
    return "'" . str_replace(['\\', "'"], ['\\\\', "\\'"], (string) $value) . "'";
}

$configPath = getenv('APP_DB_CONFIG') ?: '/etc/jailhost-app/database.json';
$raw = @file_get_contents($configPath);
$db = is_string($raw) ? json_decode($raw, true) : null;
if (!is_array($db)) {
    unavailable("cannot read the database settings from $configPath");
}

$conninfo = sprintf(
    'host=%s port=%s dbname=%s user=%s password=%s connect_timeout=3 application_name=jailhost-demo',
    conninfo_value($db['host'] ?? ''),
    conninfo_value($db['port'] ?? 5432),
    conninfo_value($db['name'] ?? ''),
    conninfo_value($db['user'] ?? ''),
    conninfo_value($db['password'] ?? '')
);
// A persistent connection per Apache worker: a new connection per request (a backend fork and
// a SCRAM exchange) made 64 concurrent clients time out on a busy 2-core host (load suite:
// 21 requests/s with errors, 530/s without any with pg_pconnect). Each worker holds one
// session, so Apache's MaxRequestWorkers must stay below PostgreSQL's max_connections.
$conn = @pg_pconnect($conninfo);
if ($conn === false) {
    unavailable('cannot connect to PostgreSQL at ' . ($db['host'] ?? '?') . ':' . ($db['port'] ?? '?'));
}

$table = (string) ($db['table'] ?? 'items');
$sql = 'SELECT * FROM ' . pg_escape_identifier($conn, $table) . ' LIMIT 100';
$result = @pg_query($conn, $sql);
if ($result === false && pg_connection_status($conn) !== PGSQL_CONNECTION_OK) {
    // The server closed this worker's session (a restart of the db jail): reconnect once.
    $result = @pg_connection_reset($conn) ? @pg_query($conn, $sql) : false;
}
if ($result === false) {
    unavailable("query on table $table failed: " . pg_last_error($conn));
}

$body = "<table>\n<thead><tr>";
for ($i = 0; $i < pg_num_fields($result); $i++) {
    $body .= '<th>' . h(pg_field_name($result, $i)) . '</th>';
}
$body .= "</tr></thead>\n<tbody>\n";
while (($row = pg_fetch_row($result)) !== false) {
    $body .= '<tr>';
    foreach ($row as $value) {
        $body .= '<td>' . h($value === null ? '' : (string) $value) . '</td>';
    }
    $body .= "</tr>\n";
}
$body .= "</tbody>\n</table>\n<p>" . pg_num_rows($result) . ' rows from ' . h($table) . "</p>\n";
page('Items', $body);
