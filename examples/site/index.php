<?php
// The example site `make up` uploads over FTPS for the end user tanaka-shoten: it shows which
// PHP serves it and counts its visits in the end user's own database, reached with the
// credentials the operator puts in the web container's environment (DB_HOST, DB_USER, ...).
$php = PHP_MAJOR_VERSION . '.' . PHP_MINOR_VERSION;
$database = 'this course has no database';
if (getenv('DB_HOST')) {
    $engine = getenv('DB_ENGINE');
    try {
        $dsn = sprintf('%s:host=%s;port=%s;dbname=%s', $engine === 'postgresql' ? 'pgsql' : 'mysql',
            getenv('DB_HOST'), getenv('DB_PORT'), getenv('DB_NAME'));
        $db = new PDO($dsn, getenv('DB_USER'), getenv('DB_PASSWORD'), [PDO::ATTR_ERRMODE => PDO::ERRMODE_EXCEPTION]);
        $db->exec('CREATE TABLE IF NOT EXISTS visits (n INTEGER NOT NULL)');
        if ((int) $db->query('SELECT COUNT(*) FROM visits')->fetchColumn() === 0) {
            $db->exec('INSERT INTO visits (n) VALUES (0)');
        }
        $db->exec('UPDATE visits SET n = n + 1');
        $database = sprintf('%s %s, database %s as %s: visit number %d', $engine,
            $db->getAttribute(PDO::ATTR_SERVER_VERSION), getenv('DB_NAME'), getenv('DB_USER'),
            $db->query('SELECT n FROM visits')->fetchColumn());
    } catch (PDOException $e) {
        http_response_code(500);
        $database = 'the database did not answer: ' . $e->getMessage();
    }
}
$h = fn ($s) => htmlspecialchars((string) $s, ENT_QUOTES);
?>
<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>served by PHP <?= $h($php) ?></title></head>
<body>
<h1>Hello from an oem-hosting end user</h1>
<p>served by PHP <?= $h(PHP_VERSION) ?> (<?= $h(PHP_SAPI) ?>) in pod <?= $h(gethostname()) ?></p>
<p><?= $h($database) ?></p>
</body>
</html>
