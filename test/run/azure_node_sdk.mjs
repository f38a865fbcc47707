// The Node twin of azure_ml_doc.py: Key Vault code as the Azure SDK documentation writes it, with
// the public vault URL. Run under `custody run --azure`, it needs no change to talk to Custody.
import { DefaultAzureCredential } from '@azure/identity';
import { SecretClient } from '@azure/keyvault-secrets';

const credential = new DefaultAzureCredential();
const client = new SecretClient('https://my-key-vault.vault.azure.net/', credential);
const secret = await client.getSecret('secret-name');
console.log(secret.value);
