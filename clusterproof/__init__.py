"""clusterproof: checks a Kubernetes cluster's networking and storage against CLAIMS.md."""
