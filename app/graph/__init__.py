"""Microsoft Graph: the adapter over msgraph-sdk (`gateway`) and the plain types the sync core works with (`types`)."""
