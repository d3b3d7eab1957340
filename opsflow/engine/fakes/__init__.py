"""Small fakes for AWS APIs moto lacks, each named for the real API it stands in for and tested on
its own."""
