import { mount } from 'svelte';
import '../theme.css';
import Page from './ApiDocs.svelte';

mount(Page, { target: document.getElementById('app')! });
