// Package deploy holds the deployment files (Dockerfile, docker-compose.yml,
// k8s/, a systemd unit) and, in its tests, the check that they cannot drift
// from the configuration the code reads.
package deploy
