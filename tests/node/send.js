// Sends one Web Push message with the unmodified npm web-push library.
// Usage: node send.js '<subscription JSON>' '<payload>' <vapid public> <vapid private>
// Prints {"status": N, "body": "..."} (an error's status too) and exits 0.
const webpush = require('web-push');

const [subscription, payload, publicKey, privateKey] = process.argv.slice(2);
webpush.setVapidDetails('mailto:ops@example.com', publicKey, privateKey);
webpush.sendNotification(JSON.parse(subscription), payload, { TTL: 60, urgency: 'high', topic: 'lab' })
  .then((res) => console.log(JSON.stringify({ status: res.statusCode, location: res.headers.location })))
  .catch((err) => console.log(JSON.stringify({ status: err.statusCode || 0, body: err.body || String(err) })));
