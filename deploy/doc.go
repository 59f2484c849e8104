// Package deploy holds no code: its tests check what is deployed from this
// directory against the code, with the real tools. helm/webhookd is the Helm
// chart (rendered with helm over its default values and ci/*.yaml, and every
// manifest checked), prometheus/alerts.yml the alert rules (promtool check
// and unit tests) and grafana/webhookd.json the dashboard (every query names
// only metrics webhookd exports).
package deploy
