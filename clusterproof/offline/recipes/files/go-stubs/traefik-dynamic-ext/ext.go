// Package ext stands in for Traefik's unpublished extension module: no extension.
package ext

// HTTP extends Traefik's HTTP dynamic configuration: nothing here.
type HTTP struct{}

// Router extends Traefik's router configuration: nothing here.
type Router struct{}
