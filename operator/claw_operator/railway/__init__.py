"""The only package that speaks HTTP/GraphQL to Railway."""
